"""Every ```python block of docs/conntrack.md runs as written in a fresh
network namespace with only lo up (the rule for docs), within 60 s."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(name: str) -> list[str]:
    text = (ROOT / "docs" / name).read_text()
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def run_block(netns: str, code: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("index", range(len(python_blocks("conntrack.md"))))
def test_conntrack_doc_block_runs(netns: str, index: int) -> None:
    out = run_block(netns, python_blocks("conntrack.md")[index])
    assert out.strip()
