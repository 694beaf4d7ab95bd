"""Scenario 1, route dump: N /32 routes on one device in a throwaway
namespace, dumped by every contestant.

Contestants: the minimal C recv loop, a socket-module recv_into loop that
counts headers, the same loop decoding every route to a dict, pyroute2's
IPRoute and AsyncIPRoute, ``ip -j route show``, aionlmmap's raw
``async for m in ring.dump(...)`` (count only), aionlmmap's decoded route
objects with ``to_json()``, and ``aionlmmap dump routes --json``. Async
contestants run on asyncio's default loop and on uvloop.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .. import cbuild
from ..netns import namespace
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


def c_contestant(prefix: list[str], timeout: float) -> Contestant:
    def measure() -> Sample:
        try:
            binary = cbuild.build("dump_routes")
        except cbuild.CompilerMissing as error:
            raise Skipped(str(error)) from None
        result = run_child([*prefix, str(binary)], timeout=timeout, env=child_env())
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


def contestants(prefix: list[str], n: int) -> list[Contestant]:
    timeout = _timeout(n)

    def python(name: str, *args: str, reference: str | None, note: str = "", loop: str | None = None) -> Contestant:
        argv_args = [name.removesuffix("-uvloop")] + (["--loop", loop] if loop else []) + list(args)
        argv = python_contestant_argv(prefix, "route_dump", *argv_args)
        return Contestant(name, lambda: python_sample(name, argv, timeout=timeout), reference=reference, note=note)

    def ip_json() -> Sample:
        return command_sample("ip-json", [*prefix, "ip", "-j", "route", "show"], count_json_records, timeout=timeout)

    def cli() -> Sample:
        return command_sample("aionlmmap-cli", [*prefix, *cli_argv(), "dump", "routes", "--json"], count_json_records, timeout=timeout)

    items = [
        c_contestant(prefix, timeout),
        python("socket-loop", reference="aionlmmap-raw", note="socket.recv_into loop counting headers"),
        python("struct-decode", reference="aionlmmap-decoded", note="socket loop + struct decode to dicts"),
        python("pyroute2-iproute", reference="aionlmmap-decoded"),
    ]
    for loop in ("asyncio", "uvloop"):
        suffix = "" if loop == "asyncio" else "-uvloop"
        items.append(python("pyroute2-async" + suffix, reference="aionlmmap-decoded", loop=loop))
    items.append(Contestant("ip-json", ip_json, reference="aionlmmap-cli", note="ip -j route show (process wall time)"))
    for loop in ("asyncio", "uvloop"):
        suffix = "" if loop == "asyncio" else "-uvloop"
        items.append(python("aionlmmap-raw" + suffix, reference="aionlmmap-raw", loop=loop, note="async for over ring.dump(), count only"))
    for loop in ("asyncio", "uvloop"):
        suffix = "" if loop == "asyncio" else "-uvloop"
        items.append(python("aionlmmap-decoded" + suffix, reference="aionlmmap-decoded", loop=loop, note="rtnl routes() + to_json()"))
    items.append(Contestant("aionlmmap-cli", cli, reference="aionlmmap-cli", note="aionlmmap dump routes --json (process wall time)"))
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
    ratio_target("raw dump >= 0.3x the C loop", "aionlmmap-raw", "c-recv-loop", 0.3),
    ratio_target("decoded routes with to_json() >= 25x pyroute2 AsyncIPRoute", "aionlmmap-decoded", "pyroute2-async", 25),
    ratio_target("aionlmmap dump routes --json within 2x of ip -j route show", "aionlmmap-cli", "ip-json", 0.5),
    _extra_rss_target("aionlmmap-raw", 20),
    _extra_rss_target("aionlmmap-decoded", 20),
]


def run(options: Options, reporter: Reporter) -> None:
    n = options.size(DEFAULT_N)
    with namespace("dump") as space:
        reporter.progress(f"[route-dump] adding {n} routes in {space.name}")
        space.add_route_device()
        space.add_routes(n)
        summaries = options.measure("route-dump", UNIT, contestants(space.exec_prefix(), n), n, reporter.progress)
    reporter.scenario(f"{TITLE}, N={n}", summaries, TARGETS)
