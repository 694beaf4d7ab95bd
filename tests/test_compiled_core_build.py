"""Building the compiled core: where the C compiler fails, the build still
succeeds, says so in one line, and leaves the pure-Python core in place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    """A copy of what a build reads, without any built extension."""
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "aionlmmap", tmp_path / "aionlmmap", ignore=shutil.ignore_patterns("*.so", "_speedups.c", "__pycache__"))
    return tmp_path


def clean_env() -> dict[str, str]:
    """This process's environment without the core choice (the suite also
    runs with AIONLMMAP_NO_EXTENSIONS=1, which a build honours too)."""
    return {key: value for key, value in os.environ.items() if key not in ("CC", "AIONLMMAP_NO_EXTENSIONS")}


def build(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env={**clean_env(), **env},
                          capture_output=True, text=True, timeout=600)


#: Which core a fresh interpreter picks from ``tree`` alone: an editable
#: install of the package elsewhere (setuptools' __editable__ finder on
#: sys.meta_path) would otherwise supply aionlmmap._speedups from there.
PROBE = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in str(getattr(f, '__module__', ''))]\n"
    "import aionlmmap, aionlmmap._extensions as e\n"
    "assert aionlmmap.__file__.startswith(sys.argv[1]), aionlmmap.__file__\n"
    "print(e.CORE)\n"
)


def probe(tree: Path, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tree)], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def notices(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("aionlmmap: installing without the compiled core")]


def test_a_failing_c_compiler_gives_one_notice_and_a_pure_python_tree(source_tree: Path) -> None:
    result = build(source_tree, CC="false")
    assert result.returncode == 0, result.stderr[-2000:]
    [notice] = notices(result)
    assert "cannot compile aionlmmap._speedups" in notice and "pure-Python core is complete" in notice
    assert not list((source_tree / "aionlmmap").glob("_speedups*.so"))
    assert probe(source_tree, clean_env()) == "pure-python"


def test_no_extensions_at_build_time_skips_the_build_with_the_notice(source_tree: Path) -> None:
    result = build(source_tree, AIONLMMAP_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert notices(result) == ["aionlmmap: installing without the compiled core (AIONLMMAP_NO_EXTENSIONS is set); "
                               "the pure-Python core is complete, only slower"]
    assert not list((source_tree / "aionlmmap").glob("_speedups*.so"))


def test_with_a_compiler_the_build_makes_the_compiled_core(source_tree: Path) -> None:
    result = build(source_tree)
    assert result.returncode == 0 and not notices(result), result.stderr[-2000:]
    assert list((source_tree / "aionlmmap").glob("_speedups*.so"))
    assert probe(source_tree, clean_env()) == "compiled"
