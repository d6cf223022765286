"""Importing every public module of a package, so registries (parsers, detectors) fill themselves."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import `package.<module>` for every module in `path` whose name does not start with `_`."""
    for module in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
