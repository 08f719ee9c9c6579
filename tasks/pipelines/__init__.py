"""The pipelines, by the name routes use. Add one with `@pipeline("name")` and a route in the topology."""

from __future__ import annotations

from collections.abc import Callable

from tasks.pipelines.base import Job, Pipeline, Split

PIPELINES: dict[str, Pipeline] = {}


def pipeline(name: str) -> Callable[[Pipeline], Pipeline]:
    """Register a function as the pipeline called `name`."""

    def register(function: Pipeline) -> Pipeline:
        if name in PIPELINES:
            raise ValueError(f"pipeline {name!r} is registered twice")
        PIPELINES[name] = function
        return function

    return register


from tasks.pipelines import images, metadata, tables  # noqa: E402,F401  (register the built-in pipelines)

__all__ = ["PIPELINES", "Job", "Pipeline", "Split", "pipeline"]
