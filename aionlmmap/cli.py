"""The ``aionlmmap`` command.

``aionlmmap``                 current links, addresses and routes, then live changes until Ctrl-C
``aionlmmap dump KIND``       links|addresses|routes|neighbours|rules|nexthops [--json] [-d] [-s] [--netns NAME] [-4|-6] [--table N|all]
``aionlmmap monitor``         changes as lines (``--json``: one JSON object per line)
``aionlmmap info``            backend and kernel facts

JSON output uses ``ip -j``'s keys and value formats, and the same default
filters as ``ip`` (routes and rules: IPv4 unless -6 or ``--table all``;
neighbours: NOARP entries hidden), so ``aionlmmap dump routes --json``
compares with ``ip -j route show`` key by key.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TextIO

from . import _cli_families
from ._entry import guarded as _guarded

# asyncio (with ssl, subprocess, concurrent.futures) and the ring load when a
# command runs, not for `--help` or a usage error: see main().

__all__ = ["main", "build_parser"]

KINDS = ("links", "addresses", "routes", "neighbours", "rules", "nexthops")
_KIND_ALIASES = {"link": "links", "address": "addresses", "addr": "addresses", "route": "routes", "neighbour": "neighbours",
                 "neigh": "neighbours", "neighbors": "neighbours", "rule": "rules", "nexthop": "nexthops"}  # fmt: skip
_MONITOR_KINDS = {"link": "links", "address": "addresses", "route": "routes", "neighbour": "neighbours", "rule": "rules", "nexthop": "nexthops"}
_NUD_NOARP = 0x40
_NTF_PROXY = 0x08
_NTF_EXT_LEARNED = 0x10
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (which
    brings bz2, lzma and fnmatch): COLUMNS, else the terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, minus its ``import shutil``: every add_argument
    makes one (to check the metavar), so the command paid for it even
    without ``--help``."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with :class:`_HelpFormatter`; its sub-commands' parsers
    are of this class too (add_subparsers passes ``type(self)`` on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aionlmmap",
        description="Show netlink state (links, addresses, routes, neighbours, rules) and follow its changes.",
        epilog="Without a command: print links, addresses and routes, then follow changes until Ctrl-C.",
    )
    common = _Parser(add_help=False)
    common.add_argument("--netns", metavar="NAME", help="network namespace (name from `ip netns`, or a path)")
    common.add_argument("--json", action="store_true", help="JSON output with `ip -j` keys")
    common.add_argument("-d", "--details", action="store_true", help="details, as `ip -d` (routes: type, table, protocol, scope always; links: linkinfo...)")
    common.add_argument("-s", "--stats", action="count", default=0, help="statistics, as `ip -s` (links: stats64, twice: error counters too; neighbours: refcnt, used/confirmed/updated, probes; routes: a cached route's users, used, age)")
    family = common.add_mutually_exclusive_group()
    family.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    family.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument("--netns", metavar="NAME", help="network namespace for the default view")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    dump = commands.add_parser("dump", parents=[common], help="print one kind of object and exit")
    dump.add_argument("kind", choices=sorted(set(KINDS) | set(_KIND_ALIASES) | set(_cli_families.DUMP_KINDS)), metavar="KIND", help="|".join(KINDS + _cli_families.DUMP_KINDS))
    _cli_families.add_dump_options(dump)
    dump.add_argument("--table", metavar="N|all", help="routes: table id or name (default main), or all")
    dump.add_argument("--nud", choices=["all"], help="neighbours: every entry (NOARP and stateless ones too), as `ip neigh show nud all`")
    dump.add_argument("--cache", action="store_true", help="routes: the route exceptions (PMTU, redirects), as `ip route show cache`")
    monitor = commands.add_parser("monitor", parents=[common], help="follow changes until Ctrl-C")
    monitor.add_argument("--kinds", default="link,address,route", help="comma-separated: link,address,route,neighbour,rule,nexthop (default link,address,route)")
    monitor.add_argument("--no-resync", action="store_true", help="do not start with the current state, and stop on an overrun")
    commands.add_parser("info", parents=[common], help="ring backend and kernel facts")
    _cli_families.add_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``aionlmmap`` and ``python -m aionlmmap``)."""
    args = build_parser().parse_args(argv)
    if _cli_families.dumps_now(args):
        gc.disable()  # as for the other dumps below
        return _guarded(lambda: _cli_families.dump_now(args, sys.stdout))
    import asyncio

    command = args.command
    if command == "dump":
        # A one-shot dump allocates ~100k objects that refcounting frees;
        # the cyclic collector would only rescan them again and again.
        gc.disable()
        job: Callable[[], Awaitable[int]] = lambda: _dump(args, sys.stdout)  # noqa: E731
    elif command == "monitor":
        job = lambda: _monitor(args, sys.stdout)  # noqa: E731
    elif command == "info":
        job = lambda: _info(args, sys.stdout)  # noqa: E731
    elif command in _cli_families.COMMANDS:
        job = lambda: _cli_families.run(args, sys.stdout)  # noqa: E731
    else:
        job = lambda: _overview_then_follow(args, sys.stdout)  # noqa: E731
    return _guarded(lambda: asyncio.run(_until_signal(job)))


async def _until_signal(job: Callable[[], Awaitable[int]]) -> int:
    """Run ``job``; SIGINT/SIGTERM cancel it and the command exits 0."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(job())
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if stopped:
            return 0
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _open(netns: str | None) -> Any:
    from .families import rtnl

    return rtnl.open(netns=netns)


# --- dump -------------------------------------------------------------------------
async def _dump(args: argparse.Namespace, out: TextIO) -> int:
    kind = _KIND_ALIASES.get(args.kind, args.kind)
    if kind in _cli_families.DUMP_KINDS:
        return await _cli_families.dump(args, out)
    if args.nud is not None and kind != "neighbours":
        raise ValueError("--nud applies to neighbours only")
    async with _open(args.netns) as nl:
        if kind == "routes" and args.cache:
            cached = await _cached_routes(nl, args.family, args.table)
            if args.json:
                # print_route() shows "table" only when every table is listed
                drop_table = args.table != "all"
                items = (route.to_json_items(args.details, stats=bool(args.stats)) for route in cached)
                out.write("[" + ",".join(_items_text(item, drop_table) for item in items) + "]\n")
                out.flush()
                return 0
            objects = [route.to_json(args.details, bool(args.stats)) for route in cached]
            rows = [_route_row(item) for item in objects]
        elif kind == "routes" and args.json:
            # Streamed: a 100,000-route table never sits in memory whole.
            nh_info = {nexthop.id: nexthop.to_json(details=True) for nexthop in await _nexthops(nl)} if args.details else None
            await _write_routes_json(nl, args.family, args.table, out, details=args.details, nh_info=nh_info, stats=bool(args.stats))
            out.flush()
            return 0
        elif kind == "routes":
            objects, rows = await _route_rows(nl, args.family, args.table, args.details, bool(args.stats))
        elif args.table is not None or args.cache:
            raise ValueError(f"{'--table' if args.table is not None else '--cache'} applies to routes only")
        elif kind == "links":
            objects = [link.to_json(args.details, args.stats) for link in await _links(nl, stats=bool(args.stats))]
            rows = [_link_row(item) for item in objects]
        elif kind == "addresses":
            objects = await _address_groups(nl, args.family, args.details)
            rows = [row for group in objects for row in _address_rows(group)]
        elif kind == "neighbours":
            objects = [neigh.to_json(bool(args.stats)) async for neigh in nl.neighbours(args.family) if args.nud == "all" or _ip_shows_neighbour(neigh)]
            rows = [_neighbour_row(item) for item in objects]
        elif kind == "nexthops":
            objects = [nexthop.to_json(args.details) for nexthop in await _nexthops(nl, args.family)]
            rows = [_nexthop_row(item) for item in objects]
        else:
            objects = [rule.to_json(args.details) async for rule in nl.rules(args.family or 4)]
            rows = [_rule_row(item) for item in objects]
    if args.json:
        out.write(_compact(objects))
        out.write("\n")
    else:
        _write_table(out, rows)
    out.flush()
    return 0


def _ip_shows_neighbour(neigh: Any) -> bool:
    """`ip neigh show`'s default filter (print_neigh() with filter.state =
    0xFF & ~NUD_NOARP): entries in no NUD state and NOARP-only entries
    (multicast mappings) are hidden, except proxy and externally learned
    ones. The API (RtnlClient.neighbours) returns every entry."""
    if neigh.state & 0xFF & ~_NUD_NOARP:
        return True
    return bool(neigh.flags & (_NTF_PROXY | _NTF_EXT_LEARNED))


def _route_query(family: int | None, table: str | None) -> tuple[int | None, Any]:
    # `ip route show`: IPv4 of the main table; `table all` shows both
    # families, and a specific table is not repeated in each entry.
    table_value: Any = None if table is None else (table if table == "all" or not table.isdigit() else int(table))
    if family is None and table_value != "all":
        family = 4
    return family, table_value


async def _route_json(nl: Any, family: int | None, table: str | None, details: bool = False, stats: bool = False) -> AsyncIterator[dict[str, Any]]:
    family, table_value = _route_query(family, table)
    drop_table = table_value != "all"
    async for route in nl.routes(family, table_value):
        item = route.to_json(details, stats) if details or stats else route.to_json()
        if drop_table:
            item.pop("table", None)
        yield item


async def _cached_routes(nl: Any, family: int | None, table: str | None) -> list[Any]:
    """``ip route show cache``: the kernel's route exceptions (RTM_F_CLONED)."""
    from .constants import RTM_GETROUTE, RTM_NEWROUTE
    from .families.rtnl.codec import decode_route, family_number, route_dump_request
    from .families.rtnl.constants import RTM_F_CLONED

    family, table_value = _route_query(family, table)
    names = await nl.names()
    table_id = None if table_value in (None, "all") else int(table_value)
    return [
        route
        async for msg in nl._dump(RTM_GETROUTE, route_dump_request(family_number(family), table_id, cached=True))
        if msg[0] == RTM_NEWROUTE and (route := decode_route(msg[6].buffer, msg[4], msg[5], names)).flags & RTM_F_CLONED
    ]


async def _route_rows(nl: Any, family: int | None, table: str | None, details: bool = False, stats: bool = False) -> tuple[list[dict[str, Any]], list[list[str]]]:
    to_json = [item async for item in _route_json(nl, family, table, details, stats)]
    return to_json, [_route_row(item) for item in to_json]


async def _write_routes_json(
    nl: Any, family: int | None, table: str | None, out: TextIO, chunk_size: int = 4096, details: bool = False, nh_info: dict[int, Any] | None = None,
    stats: bool = False,
) -> None:
    """The text ``ip -j route show`` prints, streamed in chunks: JSON arrays
    with compact separators are ``[`` + the items joined by ``,`` + ``]``,
    and each item is the route's to_json_items() written as ip writes them
    (without "table" unless every table is shown), made by
    ``nl._route_texts`` straight from the dump messages."""
    family, table_value = _route_query(family, table)
    render = _route_renderer(drop_table=table_value != "all", details=details, nh_info=nh_info, stats=stats)
    out.write("[")
    separator = ""
    async for texts in nl._route_texts(family, table_value, render, chunk_size):
        out.write(separator)
        out.write(",".join(texts))
        separator = ","
    out.write("]\n")


def _route_renderer(drop_table: bool, details: bool, nh_info: dict[int, Any] | None = None, stats: bool = False) -> Callable[[Any], str]:
    """``render(route)``: one route's compact JSON text as ip writes it.

    print_route() shows "table" only when every table is listed (its
    ``filter.tb`` is 0); a route with rare attributes goes through
    to_json_items(), which keeps a key ip prints twice (an ``encap ip``
    route's tunnel dst)."""

    def render(route: Any) -> str:
        if route.extra is not None or details:
            info = nh_info.get(route.nhid) if nh_info and route.nhid is not None else None
            return _items_text(route.to_json_items(details, info, stats), drop_table)
        item = route.to_json()
        if drop_table:
            item.pop("table", None)
        return _compact(item)  # type: ignore[no-any-return]

    return render


def _route_text(route: Any) -> str:
    """One route of ``ip -j route show table all``."""
    return _ROUTE_TEXT_ALL_TABLES(route)


def _items_text(items: list[tuple[str, Any]], drop_table: bool = False) -> str:
    return "{" + ",".join(f"{_compact(key)}:{_compact(value)}" for key, value in items if not (drop_table and key == "table")) + "}"


_ROUTE_TEXT_ALL_TABLES = _route_renderer(drop_table=False, details=False)


async def _links(nl: Any, stats: bool = False) -> list[Any]:
    """Every link, with names of lower devices and masters resolved; with
    ``stats`` from a dump that carries IFLA_STATS64 (``ip -s link``)."""
    if not stats:
        return [link async for link in nl.links()]
    from .families.rtnl.codec import decode_link, link_dump_request, resolve_link
    from .constants import RTM_GETLINK, RTM_NEWLINK

    links = {}
    async for msg in nl._dump(RTM_GETLINK, link_dump_request(stats=True)):
        if msg[0] == RTM_NEWLINK:
            link = decode_link(msg[6].buffer, msg[4], msg[5])
            links[link.ifindex] = link
    return [resolve_link(link, links) for link in links.values()]


async def _nexthops(nl: Any, family: int | None = None) -> list[Any]:
    """``ip nexthop show``: every nexthop object (of ``family``)."""
    from .families.rtnl.codec import family_number
    from .families.rtnl.nexthops import RTM_GETNEXTHOP, RTM_NEWNEXTHOP, decode_nexthop, nexthop_dump_request

    names = await nl.names()
    return [
        decode_nexthop(msg[6].buffer, msg[4], msg[5], names)
        async for msg in nl._dump(RTM_GETNEXTHOP, nexthop_dump_request(family_number(family)))
        if msg[0] == RTM_NEWNEXTHOP
    ]


async def _address_groups(nl: Any, family: int | None, details: bool = False) -> list[dict[str, Any]]:
    """``ip -j [-d] address show``: one entry per link with its ``addr_info``."""
    links = [link.to_json(details) async for link in nl.links()]
    names = {link["ifindex"]: link["ifname"] for link in links}
    by_index: dict[int, list[dict[str, Any]]] = {link["ifindex"]: [] for link in links}
    async for address in nl.addresses(family):
        by_index.setdefault(address.ifindex, []).append(address.to_json())
    groups = []
    for link in links:
        infos = by_index.get(link["ifindex"], [])
        if family is not None and not infos:
            continue  # `ip -4 addr` lists only links with such addresses
        # `ip address` leaves out linkmode, the IPv6 address generation mode
        # (print_af_spec) and, without -d, the alias
        link.pop("linkmode", None)
        link.pop("inet6_addr_gen_mode", None)
        if not details:
            link.pop("ifalias", None)
        if family is not None and not details:
            for key in ("link_type", "address", "broadcast", "link_pointtopoint", "permaddr"):
                link.pop(key, None)
        if family == 6:
            # `ip -6 address` reads the AF_INET6 link dump (inet6_fill_ifinfo),
            # which has no qdisc, group, master, altnames or IFLA_LINK_NETNSID:
            # ip then names the lower device by its index in *this*
            # namespace ("link": "d1" or "if2"), even for a veth whose peer
            # lives in another one.
            for key in ("qdisc", "group", "master", "altnames"):
                link.pop(key, None)
            if "link_index" in link:
                index = link.pop("link_index")
                link.pop("link_netnsid", None)
                link = _insert_before(link, "ifname", "link", names.get(index) or f"if{index}")
        link["addr_info"] = infos
        groups.append(link)
    return groups


def _insert_before(item: dict[str, Any], before: str, key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, current in item.items():
        if name == before:
            out[key] = value
        out[name] = current
    return out


# --- monitor ----------------------------------------------------------------------
def _monitor_flags(kinds_text: str) -> dict[str, bool]:
    flags = dict.fromkeys(_MONITOR_KINDS.values(), False)
    for kind in filter(None, (part.strip() for part in kinds_text.split(","))):
        kind = {"neigh": "neighbour", "neighbor": "neighbour", "addr": "address"}.get(kind, kind)
        kind = {plural: singular for singular, plural in _MONITOR_KINDS.items()}.get(kind, kind)
        if kind not in _MONITOR_KINDS:
            raise ValueError(f"unknown kind {kind!r} in --kinds: use link,address,route,neighbour,rule,nexthop")
        flags[_MONITOR_KINDS[kind]] = True
    return flags


async def _monitor(args: argparse.Namespace, out: TextIO) -> int:
    if _cli_families.handles_monitor(args.kinds):
        return await _cli_families.monitor(args, out)
    flags = _monitor_flags(args.kinds)
    async with _open(args.netns) as nl:
        await _follow(nl, out, flags, json_lines=args.json, resync=not args.no_resync, family=args.family)
    return 0


async def _follow(nl: Any, out: TextIO, flags: dict[str, bool], *, json_lines: bool, resync: bool, family: int | None = None) -> None:
    from .families.rtnl.constants import AF_INET, AF_INET6

    wanted_family = {4: AF_INET, 6: AF_INET6}.get(family or 0)
    async for event in nl.monitor(**flags, resync=resync):
        if wanted_family is not None and getattr(event.obj, "family", wanted_family) != wanted_family:
            continue
        out.write(_compact(event.to_json()) if json_lines else _event_line(event))
        out.write("\n")
        out.flush()


async def _overview_then_follow(args: argparse.Namespace, out: TextIO) -> int:
    """The default job: current links, addresses and routes, then changes.

    The monitor starts with its own snapshot of the state; events equal to
    what the overview printed are skipped, so a change made between the
    overview and the monitor's start is still shown, and nothing twice."""
    async with _open(args.netns) as nl:
        links = [link async for link in nl.links()]
        addresses = [address async for address in nl.addresses()]
        routes = [route async for route in nl.routes(table="all")]
        printed = {("link", obj.key): obj for obj in links}
        printed.update((("address", obj.key), obj) for obj in addresses)
        printed.update((("route", obj.key), obj) for obj in routes)
        out.write(f"Links ({len(links)})\n")
        _write_table(out, [_link_row(link.to_json()) for link in links])
        out.write(f"\nAddresses ({len(addresses)})\n")
        _write_table(out, [[address.dev or str(address.ifindex), *_address_row(address.to_json())] for address in addresses])
        out.write(f"\nRoutes ({len(routes)})\n")
        _write_table(out, [_route_row(route.to_json()) for route in routes])
        out.write("\nFollowing changes (Ctrl-C to stop)...\n")
        out.flush()
        async for event in nl.monitor(links=True, addresses=True, routes=True):
            if event.action == "new" and printed.pop((event.kind, event.obj.key), None) == event.obj:
                continue
            out.write(_event_line(event) + "\n")
            out.flush()
    return 0


# --- info -------------------------------------------------------------------------
async def _info(args: argparse.Namespace, out: TextIO) -> int:
    import inspect

    try:
        from . import info as info_module  # written alongside the kernel backend
    except ImportError:
        info_module = None  # type: ignore[assignment]
    if info_module is not None and hasattr(info_module, "format_info"):
        text = info_module.format_info()
        if inspect.iscoroutine(text):
            text = await text
        out.write(str(text).rstrip("\n") + "\n")
    else:
        async with _open(args.netns) as nl:
            out.write(f"backend: {nl.ring.backend}\nportid: {nl.ring.portid}\n")
    out.flush()
    return 0


# --- plain-text rendering -----------------------------------------------------------
def _link_row(link: dict[str, Any]) -> list[str]:
    name = link["ifname"] + (f"@{link['link']}" if link.get("link") else "")
    return [str(link["ifindex"]), name, link.get("operstate", "?"), str(link.get("mtu", "")), link.get("address", ""),
            ",".join(link["flags"]), f"master {link['master']}" if "master" in link else ""]  # fmt: skip


def _address_row(info: dict[str, Any]) -> list[str]:
    return [info["family"], f"{info['local']}/{info['prefixlen']}", info["scope"], info.get("label", "")]


def _address_rows(group: dict[str, Any]) -> list[list[str]]:
    return [[group["ifname"], *_address_row(info)] for info in group["addr_info"]]


def _route_row(route: dict[str, Any]) -> list[str]:
    via = route.get("gateway") or ",".join(hop.get("gateway", "") for hop in route.get("nexthops", []))
    return [route.get("type", ""), route["dst"], f"via {via}" if via else "", f"dev {route['dev']}" if "dev" in route else "",
            f"table {route['table']}" if "table" in route else "", route.get("protocol", ""), route.get("scope", ""),
            f"metric {route['metric']}" if "metric" in route else ""]  # fmt: skip


def _neighbour_row(neigh: dict[str, Any]) -> list[str]:
    return [neigh.get("dst", ""), f"dev {neigh['dev']}" if "dev" in neigh else "", neigh.get("lladdr", ""), ",".join(neigh.get("state", []))]


def _nexthop_row(nexthop: dict[str, Any]) -> list[str]:
    if "group" in nexthop:
        what = "group " + "/".join(f"{member['id']}" + (f",{member['weight']}" if "weight" in member else "") for member in nexthop["group"])
    elif "blackhole" in nexthop:
        what = "blackhole"
    else:
        what = " ".join(filter(None, [f"via {nexthop['gateway']}" if "gateway" in nexthop else "", f"dev {nexthop['dev']}" if "dev" in nexthop else ""]))
    return [f"id {nexthop['id']}", what, ",".join(nexthop["flags"])]


def _rule_row(rule: dict[str, Any]) -> list[str]:
    selector = "from " + (rule["src"] + (f"/{rule['srclen']}" if "srclen" in rule else ""))
    if "dst" in rule:
        selector += " to " + rule["dst"] + (f"/{rule['dstlen']}" if "dstlen" in rule else "")
    if "fwmark" in rule:
        selector += f" fwmark {rule['fwmark']}" + (f"/{rule['fwmask']}" if "fwmask" in rule else "")
    target = f"lookup {rule['table']}" if "table" in rule else rule.get("action", "")
    return [f"{rule['priority']}:", selector, target]


def _write_table(out: TextIO, rows: list[list[str]]) -> None:
    if not rows:
        out.write("  (none)\n")
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        out.write("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")


def _event_line(event: Any) -> str:
    item = event.obj.to_json()
    kind = event.kind
    if kind == "link":
        text = " ".join(_link_row(item))
    elif kind == "address":
        text = f"{event.obj.dev or event.obj.ifindex} {item['family']} {item['local']}/{item['prefixlen']} scope {item['scope']}"
    elif kind == "route":
        text = " ".join(cell for cell in _route_row(item) if cell)
    elif kind == "neighbour":
        text = " ".join(cell for cell in _neighbour_row(item) if cell)
    elif kind == "nexthop":
        text = " ".join(f"{key} {value}" for key, value in item.items())
    else:
        text = " ".join(_rule_row(item))
    return f"{event.action:<3} {kind:<9} {' '.join(text.split())}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
