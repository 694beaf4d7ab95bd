"""Which core runs: the compiled twins (``aionlmmap._speedups``) or pure Python.

Pure: imports neither asyncio nor socket.

The pure-Python functions in :mod:`aionlmmap.message`, :mod:`aionlmmap.attributes`
and the families are the reference; ``_speedups.pyx`` mirrors some of them
function for function (same names, signatures, results and exceptions;
tests/test_compiled_core.py compares them on the same inputs). Each module
that has twins asks :data:`speedups` once at import and swaps them in.

The compiled core is used when the extension was built (``pip install .``
with a C compiler) unless ``AIONLMMAP_NO_EXTENSIONS`` is set to a non-empty
value other than ``0``, which selects pure Python, as aiohttp's
``AIOHTTP_NO_EXTENSIONS`` does.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["CORE", "CORE_REASON", "speedups", "core_description"]

#: The set of twins this code expects (``_speedups.TWINS_VERSION``); raise
#: both together whenever a twin is added or changes signature.
TWINS_VERSION = 10


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("AIONLMMAP_NO_EXTENSIONS", "") not in ("", "0"):
        return None, "AIONLMMAP_NO_EXTENSIONS is set"
    try:
        _speedups = importlib.import_module("._speedups", __package__)
    except ImportError as exc:
        return None, f"the compiled extension is not built ({exc}); reinstall with a C compiler to get it"
    if getattr(_speedups, "TWINS_VERSION", None) != TWINS_VERSION:
        return None, (f"the compiled extension at {_speedups.__file__} is a stale build (twins version "
                      f"{getattr(_speedups, 'TWINS_VERSION', None)}, this code needs {TWINS_VERSION}); rebuild it: pip install .")
    return _speedups, f"aionlmmap._speedups ({_speedups.__file__})"


#: the compiled module, or None when pure Python is in use
speedups, CORE_REASON = _load()
#: "compiled" or "pure-python"
CORE = "compiled" if speedups is not None else "pure-python"


def core_description() -> str:
    """One line: which core is in use and why."""
    return f"{CORE} ({CORE_REASON})"
