"""The families as packages (issue 17 section 4): the import graph between
them, and the old flat module paths still naming the very same modules."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aionlmmap
from aionlmmap import families

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aionlmmap"
FAMILIES = PACKAGE / "families"
FAMILY_PACKAGES = sorted(path.name for path in FAMILIES.iterdir() if (path / "__init__.py").is_file())
#: modules outside families/ that may import a family: the command line and the aionlmmap.rtnl alias
FRONT_ENDS = {"aionlmmap.cli", "aionlmmap._cli_families", "aionlmmap._entry", "aionlmmap.rtnl", "aionlmmap.__main__"}

#: every old flat path, submodules of the old conntrack package included
OLD_PATHS = sorted(
    [f"aionlmmap.families.{old}" for old in families.MOVED]
    + [f"aionlmmap.families.conntrack.{path.stem}" for path in (FAMILIES / "netfilter" / "conntrack").glob("*.py") if path.stem != "__init__"]
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, at any depth
    (function-level and TYPE_CHECKING imports are dependencies too). For
    ``from X import name`` both X and X.name are listed: name may be a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def family_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["aionlmmap", "families"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in FAMILY_PACKAGES else None


def is_module_file(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def source_files(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_families_are_packages() -> None:
    assert {"rtnl", "netfilter", "sock_diag", "genl"} <= set(FAMILY_PACKAGES)
    # Nothing left of the flat layout: a module file at an old path would be
    # imported instead of (and beside) the moved one.
    flat = sorted(path.name for path in FAMILIES.glob("*.py") if path.stem not in {"__init__", "_drops"})
    assert not flat, f"modules beside the family packages in aionlmmap/families/: {flat}; move them into their family's package"


def test_family_packages_import_no_other_family_except_as_declared() -> None:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in source_files(FAMILIES):
        importer = family_of(module_name(path))
        if importer is None:
            continue  # families/__init__.py and the shared _drops.py
        for line, target in imports_of(path):
            imported = family_of(target)
            if imported is not None and imported != importer and not target.endswith(("._drops",)):
                module = target.split(".", 2)[2]
                if not is_module_file(target):
                    continue  # "from ...rtnl.objects import Event": Event is not a module
                edges.setdefault((importer, module), []).append(f"{path.relative_to(ROOT)}:{line}")
    undeclared = {edge: where for edge, where in edges.items() if edge not in families.CROSS_FAMILY}
    assert not undeclared, (
        f"a family package imports another family: {undeclared}; import what both need from the core or a shared "
        "aionlmmap/families/_*.py module instead (or, if it must stay, declare it in families.CROSS_FAMILY)")
    # Declared edges exist (the declaration is not stale) and the family graph stays acyclic.
    assert set(edges) == set(families.CROSS_FAMILY), f"families.CROSS_FAMILY is stale: declared {sorted(families.CROSS_FAMILY)}, found {sorted(edges)}"
    graph: dict[str, set[str]] = {}
    for importer, module in edges:
        graph.setdefault(importer, set()).add(module.split(".")[0])

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ()))

    cycles = [family for family in graph if reaches(family, family)]
    assert not cycles, f"import cycle between family packages through {cycles}: {graph}"


def test_the_core_imports_no_family() -> None:
    offenders = []
    for path in source_files(PACKAGE):
        name = module_name(path)
        if family_of(name) is not None or name.startswith("aionlmmap.families") or name in FRONT_ENDS:
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line} imports {target}" for line, target in imports_of(path) if target.startswith("aionlmmap.families")]
    assert not offenders, f"core modules import a family (a cycle: families import the core): {offenders}"


def test_internal_code_imports_the_new_paths() -> None:
    old = []
    for path in source_files(PACKAGE, ROOT / "examples", ROOT / "benchmarks"):
        for line, target in imports_of(path):
            new = families.moved_to(target)
            if new is not None:
                old.append(f"{path.relative_to(ROOT)}:{line}: {target} -> {new}")
    assert not old, "old-layout import paths in the package, examples or benchmarks (they still work, but import the new ones): " + "; ".join(old)


def test_the_compiled_core_imports_resolve() -> None:
    # _speedups.pyx imports family modules at first use (they import it at
    # theirs); a path that does not resolve would only fail on that first call.
    pairs = []
    for path in sorted([*PACKAGE.glob("*.pyx"), *PACKAGE.glob("*.pxi")]):  # the .pxi files the .pyx includes
        for module, names in re.findall(r"^\s*from (aionlmmap[\w.]*) import ([\w ,]+)$", path.read_text(), re.MULTILINE):
            pairs += [(path.name, module, name.split(" as ")[0].strip()) for name in names.split(",")]
    assert any(module.startswith("aionlmmap.families") for _, module, _ in pairs)
    for source, module, name in pairs:
        assert families.moved_to(module) is None and families.moved_to(f"{module}.{name}") is None, f"{source} imports the old path {module}.{name}"
        # "from package import submodule" imports the submodule when it is not an attribute yet
        assert hasattr(importlib.import_module(module), name) or is_module_file(f"{module}.{name}"), (
            f"{source}: from {module} import {name} does not resolve")


@pytest.mark.parametrize("old", OLD_PATHS)
def test_old_path_is_the_same_module(old: str) -> None:
    new = families.moved_to(old)
    assert new is not None and new != old
    assert importlib.import_module(old) is importlib.import_module(new)
    assert sys.modules[old] is sys.modules[new]
    assert importlib.import_module(old).__name__ == new  # one module, named by where it lives


def test_old_paths_alias_whichever_is_imported_first() -> None:
    # A fresh interpreter per order: old paths first, then new ones first.
    program = """
import importlib, json, sys
from aionlmmap import families
order = json.loads(sys.argv[1])
ids = {name: id(importlib.import_module(name)) for name in order}
print(json.dumps([name for name in order if ids[name] != id(importlib.import_module(families.moved_to(name) or name))]))
"""
    for old_first in (True, False):
        names = OLD_PATHS + [families.moved_to(name) for name in OLD_PATHS]
        if not old_first:
            names.reverse()
        result = subprocess.run([sys.executable, "-c", program, json.dumps(names)], capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(result.stdout) == [], f"distinct modules under old and new names ({'old' if old_first else 'new'} first)"


def test_patching_and_isinstance_hold_across_old_and_new_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    import aionlmmap.families.conntrack as old_conntrack
    import aionlmmap.families.netfilter.conntrack.client as new_client
    import aionlmmap.families.rtnl_objects as old_objects
    import aionlmmap.rtnl
    from aionlmmap.families.netfilter import nfqueue
    from aionlmmap.families.rtnl import objects

    assert aionlmmap.rtnl is families.rtnl
    sentinel = object()
    monkeypatch.setattr("aionlmmap.families.nfqueue.open", sentinel)  # patched by the old path ...
    assert nfqueue.open is sentinel  # ... seen at the new one
    monkeypatch.setattr(aionlmmap.rtnl, "open", sentinel)
    assert families.rtnl.open is sentinel
    assert old_conntrack.ConntrackClient is new_client.ConntrackClient
    link = objects.Link(ifindex=1, ifname="lo")
    assert isinstance(link, old_objects.Link)


def test_an_old_path_that_never_existed_is_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("aionlmmap.families.rtnl_nonexistent")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("aionlmmap.families.conntrack.nonexistent")
    assert families.moved_to("aionlmmap.families.sock_diag.client") is None
    assert families.moved_to("aionlmmap.families.conntrack.codec") == "aionlmmap.families.netfilter.conntrack.codec"
    assert aionlmmap.__name__ == "aionlmmap"


def _fixer():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("layout_fix_imports", ROOT / "scripts" / "layout_fix_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("module", "is_package", "line", "expected"), [
    # lines a branch may add at the old paths, merged into the moved files
    ("aionlmmap.families.rtnl.codec", False, "from ..errors import DecodeError", "from ...errors import DecodeError"),
    ("aionlmmap.families.rtnl.codec", False, "from .rtnl_objects import Route", "from .objects import Route"),
    ("aionlmmap.families.rtnl", True, "from .. import open as _open_ring", "from ... import open as _open_ring"),
    ("aionlmmap.families.rtnl.monitor", False, "    from .rtnl import RtnlClient", "    from . import RtnlClient"),
    ("aionlmmap.families.netfilter.nftables", True, "from . import nftables_expr as _expr", "from . import expr as _expr"),
    ("aionlmmap.families.netfilter.nftables", True, "from .nftables_expr import *  # noqa", "from .expr import *  # noqa"),
    ("aionlmmap.families.netfilter.nftables", True, "from .nfnetlink import batch_begin", "from ..nfnetlink import batch_begin"),
    ("aionlmmap.families.netfilter.conntrack.client", False, "from ..rtnl_state import StateTracker", "from ...rtnl.state import StateTracker"),
    ("aionlmmap.families.netfilter.conntrack.client", False, "from ...errors import NetlinkError", "from ....errors import NetlinkError"),
    ("aionlmmap.families.netfilter.conntrack.client", False, "from .._drops import DropWatch", "from ..._drops import DropWatch"),
    ("aionlmmap.families.netfilter.conntrack.codec", False, "from ..nfnetlink import nfnl_type", None),  # the same place both ways
    ("aionlmmap.families.rtnl.codec", False, "from .objects import Route", None),  # already new
    ("aionlmmap.cli", False, "    from .families.rtnl_codec import family_number", "    from .families.rtnl.codec import family_number"),
    ("examples.x", False, "from aionlmmap.families import nflog, nftables", "from aionlmmap.families.netfilter import nflog, nftables"),
    ("examples.x", False, "from aionlmmap.families import rtnl_constants", "from aionlmmap.families.rtnl import constants as rtnl_constants"),
    ("examples.x", False, "from aionlmmap.families.conntrack.codec import TupleSpec", "from aionlmmap.families.netfilter.conntrack.codec import TupleSpec"),
    ("examples.x", False, "from aionlmmap.families import rtnl, sock_diag", None),
])
def test_the_merge_fixer_rewrites_flat_layout_imports(module: str, is_package: bool, line: str, expected: str | None) -> None:
    head = "def f():\n" if line.startswith(" ") else ""  # a function-level import
    fixed, changes = _fixer().fix_text(head + line + "\n", module, is_package)
    assert fixed == head + (line if expected is None else expected) + "\n"
    assert len(changes) == (expected is not None)


def test_the_tree_has_no_flat_layout_imports_for_the_fixer() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "layout_fix_imports.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
