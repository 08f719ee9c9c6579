"""The pipelines, by the name routes use. Add one with `@pipeline("name")` in a module of this folder (every module
here is imported, so nothing else names it; the worker image copies the folder) and a route in the topology.

A pipeline has a version (1 unless declared): the ledger records which version made a file's outputs, and
`dropq reprocess --pipeline NAME` enqueues the files an older version made. Raise it when the outputs change.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable

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


def register_modules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of a package's folder (but `base`), which registers its pipelines; their names."""
    names = [f"{package}.{info.name}" for info in pkgutil.iter_modules(list(path)) if info.name != "base"]
    for name in names:
        importlib.import_module(name)
    return names


# The built-in pipelines (images, metadata, tables) and any module added beside them.
MODULES = register_modules(__name__, __path__)

__all__ = ["MODULES", "PIPELINES", "VERSIONS", "Job", "Pipeline", "Split", "pipeline", "register_modules"]
