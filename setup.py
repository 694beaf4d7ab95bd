"""Builds the optional compiled core (aionlmmap/_speedups.pyx) beside the
pure-Python package. Everything else is in pyproject.toml.

The extension is optional, as aiohttp's and yarl's are: without Cython or
a working C compiler (or with AIONLMMAP_NO_EXTENSIONS=1 at build time) the
build prints one notice and installs the complete pure-Python core, which
gives the same results, only slower.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NOTICE = "aionlmmap: installing without the compiled core ({}); the pure-Python core is complete, only slower"


def _notice(reason: str) -> None:
    print(NOTICE.format(reason), file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that turns a missing compiler into the pure-Python install."""

    def run(self) -> None:
        self._failed: set[str] = set()
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001  # distutils raises several unrelated types here
            _notice(f"build_ext failed: {exc}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001  # CompileError, LinkError, CCompilerError, OSError
            self._failed.add(ext.name)
            # The compiler's own output went to the build log above; one line here.
            _notice(f"cannot compile {ext.name}: {type(exc).__name__}{': ' + str(exc).strip()[:120] if str(exc).strip() else ''}")

    def copy_extensions_to_source(self) -> None:
        # --inplace / editable installs copy each built extension into the
        # tree; one that failed to compile has nothing to copy.
        failed = getattr(self, "_failed", set())
        built = [ext for ext in self.extensions if ext.name not in failed]
        self.extensions, everything = built, self.extensions
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = everything


def _extensions() -> list[Extension]:
    if os.environ.get("AIONLMMAP_NO_EXTENSIONS", "") not in ("", "0"):
        _notice("AIONLMMAP_NO_EXTENSIONS is set")
        return []
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aionlmmap", "_speedups.pyx")
    if not os.path.exists(source):
        _notice("aionlmmap/_speedups.pyx is not in this source tree")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _notice("Cython is not installed")
        return []
    try:
        return cythonize(
            [Extension("aionlmmap._speedups", ["aionlmmap/_speedups.pyx"], extra_compile_args=["-O2"],
                       depends=sorted(glob.glob("aionlmmap/_speedups_*.pxi")))],
            compiler_directives={"language_level": "3"},
            quiet=True,
        )
    except Exception as exc:  # noqa: BLE001  # Cython.Compiler.Errors.CompileError and friends
        _notice(f"Cython could not translate aionlmmap/_speedups.pyx: {exc}")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
