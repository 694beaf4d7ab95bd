"""Scenario 1, route dump: N routes in a throwaway namespace, dumped by
every contestant, on three table shapes (one scenario name each):

- ``route-dump``: N /32 routes on one device (no gateway): the cheapest
  shape to decode;
- ``route-dump-gateway``: N /32 routes, each via a gateway;
- ``route-dump-mixed``: a realistic table: IPv4 and IPv6 in one dump,
  gateways, metrics, protocols (static, bgp), mtu and multipath routes
  beside device routes; dumped as ``ip -j route show table all`` does
  (every family and table).

Contestants: the minimal C recv loop, a socket-module recv_into loop that
counts headers, the same loop decoding every route to a dict, pyroute2's
IPRoute and AsyncIPRoute, ``ip -j route show``, aionlmmap's raw
``async for m in ring.dump(...)`` (count only), aionlmmap's decoded route
objects with ``to_json()``, and ``aionlmmap dump routes --json``. Async
contestants run on asyncio's default loop and on uvloop. aionlmmap runs
on both cores: the plain names on the compiled core, ``-pure`` on pure
Python (``AIONLMMAP_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .. import cbuild
from ..netns import Namespace, namespace, route_address
from ..runner import (
    Contestant,
    Reporter,
    Sample,
    Skipped,
    Target,
    command_sample,
    count_json_records,
    parse_result,
    python_contestant_argv,
    python_sample,
    ratio_target,
    run_child,
    child_env,
)
from . import Options

TITLE = "Scenario 1: route dump"
DEFAULT_N = 100_000
UNIT = "msgs/s"


def _timeout(n: int) -> float:
    # pyroute2 decodes ~30-50k routes/s here; leave a wide margin.
    return 120 + n / 200


#: shape -> (title, whether the dump asks for every family and table)
SHAPES = {
    "device": ("N /32 routes on one device", False),
    "gateway": ("N /32 routes via a gateway", False),
    "mixed": ("N routes, IPv4 and IPv6: gateways, metrics, protocols, mtu, multipath (table all)", True),
}
#: the route device's addresses and the gateways the shapes use
GATEWAY_NET4, GATEWAYS4 = "10.255.0.1/16", ("10.255.0.2", "10.255.0.3")
GATEWAY_NET6, GATEWAY6 = "fd00:ff::1/64", "fd00:ff::2"


def mixed_routes(n: int, device: str) -> list[str]:
    """``ip -batch`` lines of the realistic table, in a cycle of ten: three
    IPv4 /24s via a gateway with a metric (proto static), one device /32,
    one /24 via a gateway with an mtu (proto bgp), one two-way multipath
    /24, three IPv6 /64s via a gateway with a metric, one IPv6 device /64
    with an mtu."""
    if n > 160_000:
        raise ValueError("the mixed table has room for at most 160,000 routes")
    lines = []
    gateway, other = GATEWAYS4
    for i in range(n):
        k = i // 10
        kind = i % 10
        if kind < 3:
            lines.append(f"route add 20.{(3 * k + kind) >> 8 & 255}.{(3 * k + kind) & 255}.0/24 via {gateway} dev {device} metric {i % 7} proto static")
        elif kind == 3:
            lines.append(f"route add {route_address(k)}/32 dev {device}")
        elif kind == 4:
            lines.append(f"route add 30.{k >> 8}.{k & 255}.0/24 via {other} dev {device} mtu 1400 proto bgp")
        elif kind == 5:
            lines.append(f"route add 40.{k >> 8}.{k & 255}.0/24 nexthop via {gateway} dev {device} weight 1 nexthop via {other} dev {device} weight 2")
        elif kind < 9:
            lines.append(f"route add fd01:{3 * k + kind - 6:x}::/64 via {GATEWAY6} dev {device} metric {100 + i % 5} proto static")
        else:
            lines.append(f"route add fd02:{k:x}::/64 dev {device} mtu 1400")
    return lines


def build_table(space: Namespace, shape: str, n: int) -> None:
    # No duplicate address detection: the links' IPv6 link-local addresses
    # (and their local routes) exist at once, not a second into the run,
    # so every contestant dumps the same table.
    space.run("sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
    device = space.add_route_device()
    if shape == "device":
        space.add_routes(n)
        return
    space.ip("addr", "add", GATEWAY_NET4, "dev", device)
    space.ip("-6", "addr", "add", GATEWAY_NET6, "dev", device, "nodad")
    if shape == "gateway":
        space.ip_batch(f"route add {route_address(i)}/32 via {GATEWAYS4[0]} dev {device}" for i in range(n))
    else:
        space.ip_batch(mixed_routes(n, device))


def c_contestant(prefix: list[str], timeout: float, every_family: bool = False) -> Contestant:
    def measure() -> Sample:
        try:
            binary = cbuild.build("dump_routes")
        except cbuild.CompilerMissing as error:
            raise Skipped(str(error)) from None
        result = run_child([*prefix, str(binary), *(["all"] if every_family else [])], timeout=timeout, env=child_env())
        data = parse_result(result, "c-recv-loop")
        return Sample(int(data["count"]), float(data["elapsed"]), result.peak_rss_kib)

    return Contestant("c-recv-loop", measure, reference="aionlmmap-raw", note="C, recv() into 32 KiB, counts headers")


def cli_argv() -> list[str]:
    """The ``aionlmmap`` console script that pip installed beside this
    Python, else the one on PATH, else ``python -m aionlmmap``. Beside the
    interpreter first: on PATH it may be a version manager's shim (pyenv's
    is a shell script that adds about 0.1 s to every start, which `ip` does
    not pay)."""
    try:
        import aionlmmap.cli  # noqa: F401
    except ImportError as error:
        raise Skipped(f"aionlmmap.cli is not importable yet ({error})") from None
    beside = Path(sys.executable).parent / "aionlmmap"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    script = shutil.which("aionlmmap")
    return [script] if script else [sys.executable, "-m", "aionlmmap"]


def contestants(prefix: list[str], n: int, every_family: bool = False) -> list[Contestant]:
    timeout = _timeout(n)
    family = ["--family", "all"] if every_family else []
    table = ["--table", "all"] if every_family else []

    def python(name: str, *args: str, reference: str | None, note: str = "", loop: str | None = None, core: str | None = None) -> Contestant:
        base = name.removesuffix("-pure").removesuffix("-uvloop")
        argv_args = [base] + (["--loop", loop] if loop else []) + family + list(args)
        argv = python_contestant_argv(prefix, "route_dump", *argv_args)
        return Contestant(name, lambda: python_sample(name, argv, timeout=timeout, core=core), reference=reference, note=note)

    def ip_json() -> Sample:
        return command_sample("ip-json", [*prefix, "ip", "-j", "route", "show", *(["table", "all"] if every_family else [])], count_json_records, timeout=timeout)

    def cli(core: str) -> Any:
        return lambda: command_sample("aionlmmap-cli", [*prefix, *cli_argv(), "dump", "routes", "--json", *table], count_json_records, timeout=timeout, core=core)

    items = [
        c_contestant(prefix, timeout, every_family),
        python("socket-loop", reference="aionlmmap-raw", note="socket.recv_into loop counting headers"),
        python("struct-decode", reference="aionlmmap-decoded", note="socket loop + struct decode to dicts"),
        python("pyroute2-iproute", reference="aionlmmap-decoded"),
    ]
    for loop in ("asyncio", "uvloop"):
        suffix = "" if loop == "asyncio" else "-uvloop"
        items.append(python("pyroute2-async" + suffix, reference="aionlmmap-decoded", loop=loop))
    items.append(Contestant("ip-json", ip_json, reference="aionlmmap-cli", note=f"ip -j route show{' table all' if every_family else ''} (process wall time)"))
    for loop, core in (("asyncio", "compiled"), ("uvloop", "compiled"), ("asyncio", "pure")):
        suffix = ("" if loop == "asyncio" else "-uvloop") + ("-pure" if core == "pure" else "")
        items.append(python("aionlmmap-raw" + suffix, reference="aionlmmap-raw", loop=loop, core=core, note="async for over ring.dump(), count only"))
    for loop, core in (("asyncio", "compiled"), ("uvloop", "compiled"), ("asyncio", "pure")):
        suffix = ("" if loop == "asyncio" else "-uvloop") + ("-pure" if core == "pure" else "")
        items.append(python("aionlmmap-decoded" + suffix, reference="aionlmmap-decoded", loop=loop, core=core, note="rtnl routes() + to_json()"))
    for core in ("compiled", "pure"):
        name = "aionlmmap-cli" + ("-pure" if core == "pure" else "")
        items.append(Contestant(name, cli(core), reference="aionlmmap-cli", note="aionlmmap dump routes --json (process wall time)"))
    return items


def _extra_rss_target(name: str, limit_mib: float) -> Target:
    def check(summaries: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
        summary = summaries.get(name)
        if not summary or summary.get("status") not in ("ok", "partial") or summary.get("extra_rss_mib") is None:
            return None, f"not evaluated ({name} did not run)"
        extra = summary["extra_rss_mib"]
        return extra < limit_mib, f"{name} needed {extra:.1f} MiB beyond its RSS before the dump (target < {limit_mib} MiB)"

    return Target(f"streaming dump adds < {limit_mib:.0f} MiB RSS ({name})", check)


TARGETS = [
    ratio_target("raw dump >= 0.5x the C loop (issue 16)", "aionlmmap-raw", "c-recv-loop", 0.5),
    ratio_target("decoded routes with to_json() >= 25x pyroute2 AsyncIPRoute", "aionlmmap-decoded", "pyroute2-async", 25),
    ratio_target("aionlmmap dump routes --json within 2x of ip -j route show", "aionlmmap-cli", "ip-json", 0.5),
    ratio_target("pure Python: raw dump >= 0.3x the C loop", "aionlmmap-raw-pure", "c-recv-loop", 0.3),
    ratio_target("pure Python: decoded routes with to_json() >= 25x pyroute2 AsyncIPRoute", "aionlmmap-decoded-pure", "pyroute2-async", 25),
    ratio_target("pure Python: aionlmmap dump routes --json within 2x of ip -j route show", "aionlmmap-cli-pure", "ip-json", 0.5),
    _extra_rss_target("aionlmmap-raw", 20),
    _extra_rss_target("aionlmmap-decoded", 20),
]


def run_shape(shape: str, options: Options, reporter: Reporter) -> None:
    """Build the table of ``shape`` (see SHAPES) and run every contestant on it."""
    title, every_family = SHAPES[shape]
    n = options.size(DEFAULT_N)
    scenario = "route-dump" if shape == "device" else f"route-dump-{shape}"
    with namespace("dump") as space:
        reporter.progress(f"[{scenario}] adding {n} routes ({shape}) in {space.name}")
        build_table(space, shape, n)
        summaries = options.measure(scenario, UNIT, contestants(space.exec_prefix(), n, every_family), n, reporter.progress)
    reporter.scenario(f"{TITLE} ({title}), N={n}", summaries, TARGETS)


def run(options: Options, reporter: Reporter) -> None:
    run_shape("device", options, reporter)
