"""Lazy attribute loading for the public namespaces (keeps `import birnn` fast)."""

from __future__ import annotations

import importlib
from typing import Any


def lazy_getattr(package: str, names: dict[str, str]):
    """A module `__getattr__` that imports `names[attr]` (a module path) on first use."""

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        module = importlib.import_module(names[attr])
        return getattr(module, attr)

    return __getattr__
