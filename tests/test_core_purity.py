"""The pure core imports neither asyncio nor socket (DESIGN.md section 2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aionlmmap"
PURE = ["constants", "message", "attributes", "frames", "protocol", "errors", "_extensions", "drainer", "_frame_keeping", "address_text"]
FORBIDDEN = {"asyncio", "socket", "select", "selectors", "uvloop", "ctypes"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("." + (node.module or "").split(".")[0])
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    names = imported_modules(PACKAGE / f"{module}.py")
    assert not names & FORBIDDEN, f"{module}.py imports {names & FORBIDDEN}"
    internal = {name[1:] for name in names if name.startswith(".")}
    assert internal <= set(PURE), f"{module}.py imports non-pure package modules {internal - set(PURE)}"
