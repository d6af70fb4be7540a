"""Lazy package exports: names of a package load from their submodule on first use.

``import hf_spamguard.data`` (and the CLI) must not pay for pandas, pyarrow or torch until a name that
needs them is used, yet ``from hf_spamguard.data import build_dataset`` must keep working. A package
declares ``{name: submodule}`` and takes its module ``__getattr__`` / ``__dir__`` from here.

Layer 0, standard library only.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports[name]`` is the submodule defining ``name``.

    A name is imported once, then cached in the package's namespace (later look-ups skip
    ``__getattr__``); an unknown name raises ``AttributeError`` as for any module.
    """
    public = tuple(public)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
