"""Netlink families built on the ring, one package each:

- ``rtnl``: rtnetlink (links, addresses, routes, neighbours, rules, nexthops);
- ``netfilter``: nfnetlink and its subsystems (``nfqueue``, ``nflog``,
  ``nftables``, ``conntrack``);
- ``sock_diag``: socket diagnostics (what ``ss`` shows);
- ``genl``: generic netlink (the controller, ethtool, netdev).

A family package imports the core (``aionlmmap.message``, ``.attributes``,
``.ring`` ...) and the shared modules here (``_drops``), never another
family, except where :data:`CROSS_FAMILY` names it
(tests/test_layout.py checks both).

>>> from aionlmmap.families import rtnl
>>> async with rtnl.open() as nl:
...     async for route in nl.routes():
...         print(route.to_json())
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from types import ModuleType

__all__ = ["MOVED", "CROSS_FAMILY"]

#: Module paths of the flat layout (before the families became packages),
#: relative to this package, and where each module lives now. The old
#: paths keep working and name the *same* module objects (so monkeypatching
#: and isinstance hold across both), through :class:`_MovedFinder` rather
#: than alias files: a file left at an old path would stop git from seeing
#: the move as a rename, and edits made at the old path on other branches
#: would then conflict instead of following the file.
MOVED: dict[str, str] = {
    **{f"rtnl_{name}": f"rtnl.{name}" for name in (
        "codec", "constants", "link_values", "monitor", "nexthops", "objects", "requests",
        "route_layout", "route_values", "state", "stats")},
    # Address texts serve rtnl and sock_diag alike, so they left the families
    # for the core (a name starting "aionlmmap." is absolute).
    "rtnl_addresses": "aionlmmap.address_text",
    "rtnl.addresses": "aionlmmap.address_text",
    "nfnetlink": "netfilter.nfnetlink",
    "nfpacket": "netfilter.nfpacket",
    "nfqueue": "netfilter.nfqueue",
    "nflog": "netfilter.nflog",
    "nftables": "netfilter.nftables",
    "nftables_codec": "netfilter.nftables.codec",
    "nftables_expr": "netfilter.nftables.expr",
    "conntrack": "netfilter.conntrack",  # and its submodules: conntrack.client -> netfilter.conntrack.client
}

#: The imports from one family package into another that exist, as
#: (importing package, imported module): connection tracking's monitor
#: reuses rtnl's event type and resync state tracker (one direction only).
CROSS_FAMILY: frozenset[tuple[str, str]] = frozenset({
    ("netfilter", "rtnl.objects"),
    ("netfilter", "rtnl.state"),
})


def moved_to(fullname: str) -> str | None:
    """The current name of ``fullname`` if it is an old-layout path, else None."""
    prefix = __name__ + "."
    if not fullname.startswith(prefix):
        return None
    parts = fullname[len(prefix):].split(".")
    for end in range(len(parts), 0, -1):
        new = MOVED.get(".".join(parts[:end]))
        if new is not None:
            return ("" if new.startswith("aionlmmap.") else prefix) + ".".join([new, *parts[end:]])
    return None


# _Alias and _MovedFinder implement the loader and meta path finder
# protocols without subclassing importlib.abc's classes: importing
# importlib.abc loads importlib.resources (tempfile, shutil, pathlib,
# random...), ~15 ms of every `aionlmmap dump sockets` on an installed copy.
# The import system only calls the methods (find_spec, create_module,
# exec_module), it never checks the base class.


class _Alias:
    """Loads an old path as the module already imported at its new path."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # The import system keeps the module's own __name__/__spec__ (it only
        # fills attributes that are missing) and files it under the old name too.
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


class _MovedFinder:
    """Resolves the old flat paths (``aionlmmap.families.rtnl_objects``,
    ``aionlmmap.families.conntrack.client`` ...) to the moved modules."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = moved_to(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


# First on sys.meta_path: for a submodule of an aliased package (conntrack.client)
# the path finder would otherwise load netfilter/conntrack/client.py a second
# time under the old name, as a distinct module.
if not any(type(finder).__name__ == _MovedFinder.__name__ and type(finder).__module__ == __name__ for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())
