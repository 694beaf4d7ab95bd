"""Every ```python block of docs/genl.md runs as written in a fresh
network namespace with only lo up."""

from __future__ import annotations

import pytest

from tests.test_conntrack_docs import python_blocks, run_block

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("index", range(len(python_blocks("genl.md"))))
def test_genl_doc_block_runs(netns: str, index: int) -> None:
    out = run_block(netns, python_blocks("genl.md")[index])
    assert out.strip()
