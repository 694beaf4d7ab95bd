"""Every ```python block in README.md and docs/*.md runs as written.

Each block is a complete program, where top-level ``await`` is allowed as in
``python -m asyncio``: it is run by the interpreter running the tests, as
root, inside a fresh network namespace with only ``lo`` up, and must exit 0
within its time limit. So the documentation cannot rot: an
example that stops working fails here, naming the file and line.
Non-runnable text belongs in ```text or ```console blocks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
TIME_LIMIT = 60

# Runs the example from stdin; a top-level await makes eval() return a
# coroutine, which then runs on a fresh event loop.
RUNNER = """
import ast, asyncio, sys
code = compile(sys.stdin.read(), "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
outcome = eval(code, {"__name__": "__main__"})
if asyncio.iscoroutine(outcome):
    asyncio.run(outcome)
"""


def python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append((f"{document.relative_to(ROOT)}:{line}", match.group(1)))
    return blocks


def test_the_documents_have_python_examples() -> None:
    assert len(python_blocks()) >= 10


@pytest.mark.integration
@pytest.mark.parametrize(("where", "code"), python_blocks(), ids=[where for where, _ in python_blocks()])
def test_the_example_runs_as_written(netns: str, where: str, code: str) -> None:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", RUNNER],
        input=code, capture_output=True, text=True, timeout=TIME_LIMIT, cwd=ROOT,
    )
    assert result.returncode == 0, f"the example at {where} failed:\n{result.stdout}\n{result.stderr}"
