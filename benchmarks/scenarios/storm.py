"""Scenario 2, notification storm: a receiver subscribed to the link,
address and route groups while ``ip -batch`` (another process) adds N
routes, deletes every other one and adds N/2 new ones: 2N route events.

Each (contestant, receive buffer, repetition) gets a fresh namespace. After
the storm the runner reads the kernel's routes and compares them with the
view the receiver built from the events: a receiver that lost events
without noticing ends with a wrong view.

Reported: events received / expected, overruns (ENOBUFS) seen, whether the
final view matches the kernel, and events/s (first to last event; bounded
by how fast ``ip`` generates them, so not a speed contest).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from .. import cbuild
from ..netns import ROUTE_DEVICE, SENTINEL_TABLE, Namespace, namespace, route_address
from ..runner import (
    Child,
    Contestant,
    ContestantFailed,
    Reporter,
    Sample,
    Skipped,
    Target,
    child_env,
    parse_result,
    python_contestant_argv,
)
from . import Options

TITLE = "Scenario 2: notification storm"
DEFAULT_N = 50_000
UNIT = "events/s"
BIG_RCVBUF = 8 * 1024 * 1024


def storm_commands(n: int) -> Iterator[str]:
    """N adds, N/2 deletes (odd indexes), N/2 adds of new routes, then the
    sentinel: 2N route events in the main table (N rounded down to even)."""
    half = n // 2
    for index in range(2 * half):
        yield f"route add {route_address(index)}/32 dev {ROUTE_DEVICE}"
    for index in range(1, 2 * half, 2):
        yield f"route del {route_address(index)}/32 dev {ROUTE_DEVICE}"
    for index in range(2 * half, 3 * half):
        yield f"route add {route_address(index)}/32 dev {ROUTE_DEVICE}"
    yield f"route add {route_address((1 << 24) - 2)}/32 dev {ROUTE_DEVICE} table {SENTINEL_TABLE}"


def expected_events(n: int) -> int:
    return 4 * (n // 2)


def kernel_view(space: Namespace) -> set[str]:
    routes = json.loads(space.ip("-j", "route", "show", "table", "main").stdout or "[]")
    return {route["dst"] for route in routes if route.get("dst", "").startswith("10.")}


def measure_storm(n: int, receiver_argv: Callable[[Namespace, str], list[str]], name: str) -> Sample:
    with namespace("storm") as space:
        space.add_route_device()
        handle, view_path = tempfile.mkstemp(prefix="aionlmmap-bench-view-")
        os.close(handle)
        try:
            child = Child(receiver_argv(space, view_path), env=child_env())
            try:
                if not child.wait_for_line("ready", timeout=60):
                    result = child.finish(timeout=5)
                    parse_result(result, name)  # raises Skipped/ContestantFailed with its stderr
                    raise ContestantFailed(f"{name} never said it was ready")
                space.ip_batch(storm_commands(n))
            finally:
                result = child.finish(timeout=180)
            data = parse_result(result, name)
            with open(view_path) as handle_view:
                receiver_view = {line.strip() for line in handle_view if line.strip()}
        finally:
            os.unlink(view_path)
        truth = kernel_view(space)
    count = int(data.get("count", data.get("received", 0)))
    fields: dict[str, Any] = {
        "expected": expected_events(n),
        # A resyncing monitor yields differences after an overrun, so its
        # count can exceed the expected events: lost is never negative.
        "lost": max(0, expected_events(n) - count),
        "overruns": int(data.get("overruns", 0)),
        "view_matches": receiver_view == truth,
        "view_missing": len(truth - receiver_view),
        "view_stale": len(receiver_view - truth),
        "sentinel": bool(data.get("sentinel")),
    }
    if "rcvbuf" in data:
        fields["rcvbuf"] = data["rcvbuf"]
    extra = None
    if "rss_before_kib" in data:
        extra = max(0, int(data["peak_rss_kib"]) - int(data["rss_before_kib"]))
    return Sample(count, float(data["elapsed"]) or 1e-9, result.peak_rss_kib, extra, fields)


def contestants(n: int) -> list[Contestant]:
    items: list[Contestant] = []
    for label, rcvbuf in (("default", 0), ("8MiB", BIG_RCVBUF)):

        def c_argv(space: Namespace, view: str, rcvbuf: int = rcvbuf) -> list[str]:
            try:
                binary = cbuild.build("storm_receiver")
            except cbuild.CompilerMissing as error:
                raise Skipped(str(error)) from None
            return [*space.exec_prefix(), str(binary), str(rcvbuf), view]

        def python_argv(module_name: str, rcvbuf: int = rcvbuf) -> Callable[[Namespace, str], list[str]]:
            def argv(space: Namespace, view: str) -> list[str]:
                extra = ["--rcvbuf", str(rcvbuf)] if rcvbuf else []
                return python_contestant_argv(space.exec_prefix(), "storm", module_name, view, *extra)

            return argv

        for name, build in (
            ("c-receiver", c_argv),
            ("pyroute2-async", python_argv("pyroute2-async")),
            ("aionlmmap-ring", python_argv("aionlmmap-ring")),
            ("aionlmmap-monitor", python_argv("aionlmmap-monitor")),
        ):
            full = f"{name}/{label}"
            reference = f"aionlmmap-ring/{label}"
            items.append(Contestant(full, lambda build=build, full=full: measure_storm(n, build, full), reference=reference))
    return items


def _no_loss_target(name: str) -> Target:
    def check(summaries: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
        summary = summaries.get(name)
        if not summary or summary.get("status") not in ("ok", "partial"):
            return None, f"not evaluated ({name} did not run)"
        # The monitor hides overruns by design (resync): its view is the test.
        ok = summary["view_matches"] if name.startswith("aionlmmap-monitor") else summary["lost"] == 0 and summary["view_matches"]
        return ok, f"{name}: {summary['count']}/{summary['expected']} events, {summary['overruns']} overruns, view matches: {summary['view_matches']}"

    return Target(f"no loss in the storm at the default receive buffer ({name})", check)


def _loss_reported_target(summaries_names: tuple[str, ...]) -> Target:
    def check(summaries: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
        silent = []
        for name in summaries_names:
            summary = summaries.get(name)
            if summary and summary.get("status") in ("ok", "partial") and summary["lost"] > 0 and summary["overruns"] == 0 and not summary["view_matches"]:
                silent.append(name)
        return not silent, "silent loss in " + ", ".join(silent) if silent else "every loss came with an overrun report"

    return Target("every loss is reported (aionlmmap)", check)


TARGETS = [
    _no_loss_target("aionlmmap-ring/default"),
    _no_loss_target("aionlmmap-monitor/default"),
    _loss_reported_target(tuple(f"{c}/{b}" for c in ("aionlmmap-ring", "aionlmmap-monitor") for b in ("default", "8MiB"))),
]


def run(options: Options, reporter: Reporter) -> None:
    n = options.size(DEFAULT_N)
    summaries = options.measure("storm", UNIT, contestants(n), n, reporter.progress)
    reporter.scenario(f"{TITLE}, N={n} ({expected_events(n)} route events)", summaries, TARGETS, extra_columns=("expected", "lost", "overruns", "view_matches"))
