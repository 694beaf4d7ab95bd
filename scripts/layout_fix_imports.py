"""Rewrite imports that still follow the flat families layout (0.1) after a merge.

Branches that edited ``aionlmmap/families/rtnl_codec.py`` and the like at
their old paths merge into the moved files (git follows the renames), but an
import line they added keeps its old relative form: ``from ..errors import
X`` in what is now ``families/rtnl/codec.py`` means
``aionlmmap.families.errors`` there, which does not exist. This script
finds such lines (a relative import that names nothing from the file's new
place but does from its old one) and rewrites them to the new form. In
aionlmmap/ (the Cython .pyx/.pxi too), examples/ and benchmarks/ it also
rewrites old paths (``aionlmmap.families.nfqueue`` ->
``aionlmmap.families.netfilter.nfqueue``, ``from .families.rtnl_codec
import`` in cli.py). tests/ may keep old paths (they name the same modules)
and are left alone.

    python scripts/layout_fix_imports.py          # rewrite; list what changed
    python scripts/layout_fix_imports.py --check  # list only; exit 1 if any

Modules a branch added beside the packages (``families/rtnl_foo.py``) are
listed, not moved: ``git mv`` them into their family's package, then run
this again.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aionlmmap.families import MOVED, moved_to  # noqa: E402

PREFIX = "aionlmmap.families."


def is_module(name: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def current(name: str, root: Path = ROOT) -> str | None:
    """``name`` if a module has it now, its new name if it moved there, else None."""
    if is_module(name, root):
        return name
    new = moved_to(name)
    return new if new is not None and is_module(new, root) else None


def defines(module: str, name: str, root: Path = ROOT) -> bool:
    """Whether ``module``'s source binds ``name`` at top level (read, not
    imported: the module may be the one whose imports are broken)."""
    base = root.joinpath(*module.split("."))
    path = base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")
    names: set[str] = set()
    pending = list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return True  # whatever the other module defines: assume it
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            pending += node.body + node.orelse + getattr(node, "finalbody", []) + [n for h in getattr(node, "handlers", []) for n in h.body]
    return name in names or name == "__getattr__"


def provides(module: str, attribute: str, root: Path = ROOT) -> bool:
    """Whether ``from module import attribute`` works (a submodule or a top-level name)."""
    if current(f"{module}.{attribute}", root) is not None:
        return True
    where = current(module, root)
    return where is not None and defines(where, attribute, root)


def old_place(name: str, is_package: bool) -> tuple[str, bool] | None:
    """Where module ``name`` was in the flat layout: (name, was a package)."""
    if not name.startswith(PREFIX):
        return None
    rest = name[len(PREFIX):]
    if rest == "rtnl":
        return name, False  # rtnl.py became rtnl/__init__.py
    for old, new in MOVED.items():
        if rest == new:
            return PREFIX + old, is_package and old == "conntrack"  # only conntrack was a package already
        if old == "conntrack" and rest.startswith(new + "."):
            return PREFIX + old + rest[len(new):], is_package
    return None


def resolve(level: int, module: str | None, package: str) -> str:
    base = package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def relative(target: str, package: str) -> str:
    t, p = target.split("."), package.split(".")
    common = 0
    while common < min(len(t), len(p)) and t[common] == p[common]:
        common += 1
    return "." * (len(p) - common + 1) + ".".join(t[common:])


def _rename_names(rest: str, names: list[ast.alias], targets: list[str]) -> str:
    # "nftables_expr as _expr" -> "expr as _expr"; "rtnl_addresses" -> "addresses as rtnl_addresses"
    for alias, target in zip(names, targets):
        leaf = target.rpartition(".")[2]
        if leaf != alias.name:
            rest = re.sub(rf"\b{re.escape(alias.name)}\b", leaf if alias.asname else f"{leaf} as {alias.name}", rest, count=1)
    return rest


def _fixed_line(line: str, node: ast.ImportFrom, package: str, old_package: str, root: Path) -> str | None:
    if node.level == 0:
        if not (node.module or "").startswith("aionlmmap.families"):
            return None
        bases = [node.module or ""]
    else:  # what the line names from the file's place now, then from its place in the flat layout
        bases = [resolve(node.level, node.module, package), resolve(node.level, node.module, old_package)]
    names = [alias for alias in node.names if alias.name != "*"]
    here = bases[0]
    if is_module(here, root) and all(is_module(f"{here}.{a.name}", root) or (
            # a name that was a module of the flat layout where the line was written is stale, whatever else binds it
            current(f"{here}.{a.name}", root) is None and current(f"{bases[-1]}.{a.name}", root) is None and provides(here, a.name, root))
            for a in names):
        return None  # it names what it meant
    for base in bases:
        head = current(base, root)
        if head is None:
            continue
        subs = [current(f"{base}.{a.name}", root) or current(f"{head}.{a.name}", root) for a in names]
        if not all(sub is not None or (current(f"{bases[-1]}.{a.name}", root) is None and provides(head, a.name, root)) for sub, a in zip(subs, names)):
            continue
        parents = {sub.rpartition(".")[0] for sub in subs if sub is not None}
        if not names or any(sub is None for sub in subs):
            parents.add(head)
        if len(parents) != 1:
            return None  # the names are in different packages now: leave it to a person
        new_head = parents.pop()
        targets = [sub or f"{new_head}.{a.name}" for sub, a in zip(subs, names)]
        written = new_head if node.level == 0 else relative(new_head, package)
        indent = line[: len(line) - len(line.lstrip())]
        fixed = f"{indent}from {written} import {_rename_names(line.split(' import ', 1)[1], names, targets)}"
        return fixed if fixed != line else None
    return None


def fix_text(text: str, name: str, is_package: bool, root: Path = ROOT) -> tuple[str, list[str]]:
    """The source of module ``name`` with flat-layout imports rewritten, and a line per change."""
    lines = text.split("\n")
    package = name if is_package else name.rpartition(".")[0]
    old = old_place(name, is_package)
    old_package = package if old is None else (old[0] if old[1] else old[0].rpartition(".")[0])
    changes = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ImportFrom):
            continue
        line = lines[node.lineno - 1]
        if not re.match(r"\s*from\s+\S+\s+import\s", line):
            continue  # a "from" split over lines before "import": rare, left alone
        fixed = _fixed_line(line, node, package, old_package, root)
        if fixed is not None:
            lines[node.lineno - 1] = fixed
            changes.append(f"{node.lineno}: {line.strip()}  ->  {fixed.strip()}")
    return "\n".join(lines), changes


def module_of(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    parts = path.relative_to(root).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="list the stale imports only; exit 1 if there are any")
    args = parser.parse_args(argv)
    found = 0
    for path in sorted((ROOT / "aionlmmap" / "families").glob("*.py")):
        if path.stem != "__init__" and not path.stem.startswith("_"):
            print(f"{path.relative_to(ROOT)}: a module beside the family packages; git mv it into its family's package")
            found += 1
    roots = [ROOT / "aionlmmap", ROOT / "examples", ROOT / "benchmarks"]
    for path in sorted(p for r in roots if r.is_dir() for p in r.rglob("*.py") if "__pycache__" not in p.parts):
        name, is_package = module_of(path)
        fixed, changes = fix_text(path.read_text(), name, is_package)
        found += len(changes)
        for change in changes:
            print(f"{path.relative_to(ROOT)}:{change}")
        if changes and not args.check:
            path.write_text(fixed)
    # The compiled core's sources: Cython, so only their one-line Python imports are read.
    for path in sorted([*(ROOT / "aionlmmap").glob("*.pyx"), *(ROOT / "aionlmmap").glob("*.pxi")]):
        lines = path.read_text().split("\n")
        changes = []
        for number, line in enumerate(lines, 1):
            if not re.match(r"\s*from\s+aionlmmap\S*\s+import\s+[^(]*$", line):
                continue
            node = ast.parse(line.strip()).body[0]
            assert isinstance(node, ast.ImportFrom)
            fixed = _fixed_line(line, node, "aionlmmap", "aionlmmap", ROOT)
            if fixed is not None:
                lines[number - 1] = fixed
                changes.append(f"{number}: {line.strip()}  ->  {fixed.strip()}")
        found += len(changes)
        for change in changes:
            print(f"{path.relative_to(ROOT)}:{change}")
        if changes and not args.check:
            path.write_text("\n".join(lines))
    if not found:
        print("no imports of the flat layout")
    return 1 if found and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
