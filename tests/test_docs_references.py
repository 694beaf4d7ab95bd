"""Every test a document names as the proof of a sentence exists.

The docs back their promises with test names (``*test_core_ring:
test_many_sends_...*``, ``tests/test_x.py``, or a bare ``test_...`` name);
a renamed or deleted test would leave a promise with no proof and nobody
would notice. This walks README.md and docs/*.md and looks each name up in
the test files and the benchmark sources.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# names of test files, and of test functions (at least two words: a bare
# "test_x" in prose is more likely a file stem, looked up as one)
FILE_NAME = re.compile(r"\btests/(test_[a-z0-9_]+)\.py\b|\b(test_[a-z0-9_]+)\.py\b|\*(test_[a-z0-9_]+):")
TEST_NAME = re.compile(r"(?<![/\w.])(test_[a-z0-9]+(?:_[a-z0-9]+)+)\b(?!\.py|:)")


def defined_tests() -> tuple[set[str], set[str]]:
    files: set[str] = set()
    functions: set[str] = set()
    for path in [*ROOT.joinpath("tests").glob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]:
        files.add(path.stem)
        functions.update(re.findall(r"^\s*(?:async\s+)?def\s+(test_\w+)", path.read_text(), re.MULTILINE))
    return files, functions


def referenced(document: Path) -> tuple[set[str], set[str]]:
    text = document.read_text()
    files = {next(name for name in match if name) for match in FILE_NAME.findall(text)}
    # an example test the document itself writes out is no reference
    examples = set(re.findall(r"def\s+(test_\w+)", text))
    names = set(TEST_NAME.findall(text)) - files - examples
    return files, names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_test_a_document_names_exists(document: Path) -> None:
    files, functions = defined_tests()
    named_files, named_tests = referenced(document)
    assert sorted(named_files - files) == [], "test files named in the document but missing"
    assert sorted(named_tests - functions - files) == [], "tests named in the document but missing"


def test_the_reference_patterns_find_what_they_should() -> None:
    text = "(*test_core_ring: test_many_sends_in_one_iteration*) tests/test_uring.py and test_a_b_c; the test_x.py file."
    files = {next(name for name in match if name) for match in FILE_NAME.findall(text)}
    assert files == {"test_core_ring", "test_uring", "test_x"}
    assert set(TEST_NAME.findall(text)) - files == {"test_many_sends_in_one_iteration", "test_a_b_c"}
