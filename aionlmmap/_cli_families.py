"""The ``aionlmmap`` command's kinds for conntrack, sockets and generic
netlink (kept apart from cli.py so each family's output lives with it):

``aionlmmap dump conntrack [--json] [-4|-6]``        ``conntrack -L``
``aionlmmap dump sockets [--json] [-t] [-u] [-x] [-4|-6] [state S]``   ``ss -tanux``
``aionlmmap dump genl-families [--json]``            ``genl ctrl list``
``aionlmmap monitor --kinds conntrack [--json]``     ``conntrack -E``
``aionlmmap ethtool DEV [--json]``                   ``ethtool DEV``
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

__all__ = ["DUMP_KINDS", "COMMANDS", "add_dump_options", "add_commands", "dump", "dumps_now", "dump_now", "handles_monitor", "monitor", "run"]

DUMP_KINDS = ("conntrack", "sockets", "genl-families")
COMMANDS = ("ethtool",)
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def add_dump_options(dump: argparse.ArgumentParser) -> None:
    """Options of ``dump sockets`` (``ss``'s letters)."""
    dump.add_argument("-t", "--tcp", action="store_true", help="sockets: TCP")
    dump.add_argument("-u", "--udp", action="store_true", help="sockets: UDP")
    dump.add_argument("-x", "--unix", action="store_true", help="sockets: unix")
    dump.add_argument("filter", nargs="*", metavar="state S", help="sockets: `state NAME` (ss's state names and groups)")
    # `dump sockets --json -t state listening`: the filter words come after
    # options, which plain parse_known_args would leave unmatched (the
    # positionals are consumed together when KIND is seen).
    dump.__class__ = _IntermixedParser


class _IntermixedParser(argparse.ArgumentParser):
    """Parses its positionals after all options (parse_known_intermixed_args,
    which calls parse_known_args again inside: hence the guard)."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            parsed, rest = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False
        if getattr(parsed, "kind", "sockets") != "sockets" and (parsed.filter or parsed.tcp or parsed.udp or parsed.unix):
            self.error("-t, -u, -x and `state S` apply to `dump sockets` only")
        return parsed, rest


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    ethtool = commands.add_parser("ethtool", parents=[common], help="link settings, modes, features, rings, channels, stats (ethtool netlink)")
    ethtool.add_argument("device", metavar="DEV")


def _family_number(family: int | None) -> int | None:
    return family


async def dump(args: argparse.Namespace, out: TextIO) -> int:
    kind = args.kind
    if kind == "conntrack":
        from .families.netfilter import conntrack

        async with conntrack.open(netns=args.netns) as ct:
            flows = [flow async for flow in ct.flows(args.family)]
        if args.json:
            out.write(_compact([flow.to_json() for flow in flows]) + "\n")
        else:
            for flow in flows:
                out.write(_conntrack_line(flow.to_json()) + "\n")
        out.flush()
        return 0
    if kind == "sockets":
        return dump_now(args, out)
    if kind == "genl-families":
        from .families.genl import cli as genl_cli

        return await genl_cli.dump_families(args, out)
    raise ValueError(f"unknown kind {kind!r}")


def dumps_now(args: argparse.Namespace) -> bool:
    """Whether ``dump KIND`` runs without an event loop (:func:`dump_now`)."""
    return args.command == "dump" and args.kind == "sockets"


def dump_now(args: argparse.Namespace, out: TextIO) -> int:
    """``dump sockets``: one blocking dump, as ss reads it (no asyncio)."""
    from .families.sock_diag import cli as sockets_cli

    return sockets_cli.dump(args, out)


def handles_monitor(kinds_text: str) -> bool:
    kinds = {part.strip() for part in kinds_text.split(",") if part.strip()}
    if "conntrack" not in kinds:
        return False
    if kinds != {"conntrack"}:
        raise ValueError("--kinds conntrack follows NETLINK_NETFILTER: run it as a monitor of its own, apart from link,address,route,...")
    return True


async def monitor(args: argparse.Namespace, out: TextIO) -> int:
    from .families.netfilter import conntrack

    async with conntrack.open(netns=args.netns) as ct:
        async for event in ct.monitor(resync=not args.no_resync, family=args.family):
            out.write(_compact(event.to_json()) if args.json else f"{event.action:<3} conntrack {_conntrack_line(event.obj.to_json())}")
            out.write("\n")
            out.flush()
    return 0


async def run(args: argparse.Namespace, out: TextIO) -> int:
    from .families.genl import cli as genl_cli

    return await genl_cli.ethtool(args, out)


def _conntrack_line(item: dict[str, Any]) -> str:
    """``conntrack -L``'s line: family, protocol, timeout, state, both tuples, flags."""
    parts = [item["family"], item["protocol"], str(item["protonum"])]
    if "timeout" in item:
        parts.append(str(item["timeout"]))
    if "state" in item:
        parts.append(item["state"])
    for direction in ("original", "reply"):
        side = item[direction]
        parts += [f"{key}={side[key]}" for key in ("src", "dst", "sport", "dport", "type", "code", "id", "packets", "bytes") if key in side]
        if direction == "original" and "UNREPLIED" in item["flags"]:
            parts.append("[UNREPLIED]")
    parts += [f"[{flag}]" for flag in item["flags"] if flag != "UNREPLIED"]
    for key in ("mark", "zone", "use"):
        if key in item:
            parts.append(f"{key}={item[key]}")
    return " ".join(parts)
