"""The pipelines, by the name routes use. Add one with `@pipeline("name")` and a route in the topology.

A pipeline has a version (1 unless declared): the ledger records which version made a file's outputs, and
`dropq reprocess --pipeline NAME` enqueues the files an older version made. Raise it when the outputs change.
"""

from __future__ import annotations

from collections.abc import Callable

from tasks.pipelines.base import Job, Pipeline, Split

PIPELINES: dict[str, Pipeline] = {}
# Each pipeline's version, by name.
VERSIONS: dict[str, int] = {}


def pipeline(name: str, version: int = 1) -> Callable[[Pipeline], Pipeline]:
    """Register a function as the pipeline called `name`, at `version` (a whole number from 1)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"pipeline {name!r}: version {version!r} must be a whole number from 1")

    def register(function: Pipeline) -> Pipeline:
        if name in PIPELINES:
            raise ValueError(f"pipeline {name!r} is registered twice")
        PIPELINES[name] = function
        VERSIONS[name] = version
        return function

    return register


from tasks.pipelines import images, metadata, tables  # noqa: E402,F401  (register the built-in pipelines)

__all__ = ["PIPELINES", "VERSIONS", "Job", "Pipeline", "Split", "pipeline"]
