"""Compile the C contestants at run time with the system compiler.

Binaries go to a per-user cache directory keyed by the source's hash, so a
second run does not rebuild. No compiler -> :class:`CompilerMissing` with a
message that says what to install; the runner reports the contestant as
skipped with that message.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["CompilerMissing", "build", "SOURCE_DIR"]

SOURCE_DIR = Path(__file__).resolve().parent / "c"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aionlmmap-bench"


class CompilerMissing(RuntimeError):
    """No C compiler, or a library the program needs is missing."""


def build(name: str, libraries: tuple[str, ...] = ()) -> Path:
    """Compile ``benchmarks/c/NAME.c`` (with ``-lLIB`` for each library) and
    return the binary's path."""
    source = SOURCE_DIR / f"{name}.c"
    if not source.exists():
        raise CompilerMissing(f"{source} does not exist (yet)")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise CompilerMissing("no C compiler found (cc/gcc/clang): apt-get install gcc libc6-dev to run the C contestants")
    digest = hashlib.sha256(source.read_bytes() + " ".join(libraries).encode()).hexdigest()[:16]
    _CACHE.mkdir(parents=True, exist_ok=True)
    binary = _CACHE / f"{name}-{digest}"
    if binary.exists():
        return binary
    partial = binary.with_suffix(".tmp")
    command = [compiler, "-O2", "-Wall", "-o", str(partial), str(source), *(f"-l{lib}" for lib in libraries)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        hint = f" (is the -dev package of {', '.join(libraries)} installed?)" if libraries else ""
        raise CompilerMissing(f"compiling {source.name} failed{hint}: {result.stderr.strip()[:400]}")
    partial.rename(binary)
    return binary
