"""Importing every public module of a package once, so registries (parsers, detectors, hypothesis kinds)
fill themselves."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

_IMPORTED: set[str] = set()


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import `package.<module>` for every module in `path` whose name does not start with `_`; later
    calls for the same package do nothing."""
    if package in _IMPORTED:
        return
    _IMPORTED.add(package)  # first: a module that reads its registry while being imported does not recurse
    for module in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
