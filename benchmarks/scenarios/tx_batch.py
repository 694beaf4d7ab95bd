"""Scenario 4, TX batching: add N /32 routes (default 10,000) in a fresh
namespace, one request at a time vs batched.

Contestants: aionlmmap awaiting each ``ring.request`` in turn, concurrent
``ring.request`` calls 256 at a time (their messages share TX frames and one
sendmsg per loop iteration; all N at once overrun the socket with ACKs),
``ring.request_many`` in chunks of 256 (one datagram per chunk) on the
compiled core and, as ``-pure``, on the pure-Python one, pyroute2 IPRoute
and AsyncIPRoute, and ``ip -batch`` (process wall
time, file written beforehand). After each run the routes are counted in
the kernel: ``installed`` must equal N.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

from ..netns import Namespace, namespace, route_address
from ..runner import Contestant, ContestantFailed, Reporter, Sample, command_sample, python_contestant_argv, python_sample, ratio_target
from . import Options

TITLE = "Scenario 4: TX batching (route adds)"
DEFAULT_N = 10_000
UNIT = "routes/s"


def installed_routes(space: Namespace) -> int:
    routes = json.loads(space.ip("-j", "route", "show", "table", "main").stdout or "[]")
    return sum(1 for route in routes if route.get("dst", "").startswith("10."))


def measure_in_fresh_namespace(n: int, run: Callable[[Namespace], Sample]) -> Sample:
    with namespace("tx") as space:
        space.add_route_device()
        sample = run(space)
        installed = installed_routes(space)
    if installed != n:
        raise ContestantFailed(f"{installed} of {n} routes were installed")
    return Sample(sample.count, sample.elapsed, sample.peak_rss_kib, sample.extra_rss_kib, {**sample.fields, "installed": installed})


def contestants(n: int) -> list[Contestant]:
    timeout = 120 + n / 100

    def python(name: str, *extra: str, core: str | None = None) -> Contestant:
        label = name + ("-pure" if core == "pure" else "")

        def run(space: Namespace) -> Sample:
            argv = python_contestant_argv(space.exec_prefix(), "tx_batch", name, "--count", str(n), *extra)
            return python_sample(label, argv, timeout=timeout, core=core)

        return Contestant(label, lambda: measure_in_fresh_namespace(n, run), reference="aionlmmap-request-many")

    def ip_batch(space: Namespace) -> Sample:
        handle, path = tempfile.mkstemp(prefix="aionlmmap-bench-", suffix=".batch")
        with os.fdopen(handle, "w") as out:
            for index in range(n):
                out.write(f"route add {route_address(index)}/32 dev bench0\n")
        try:
            return command_sample("ip-batch", ["ip", "-n", space.name, "-batch", path], lambda _stdout: n, timeout=timeout)
        finally:
            os.unlink(path)

    return [
        python("aionlmmap-sequential"),
        python("aionlmmap-concurrent"),
        python("aionlmmap-request-many", core="compiled"),
        python("aionlmmap-request-many", core="pure"),
        python("pyroute2-iproute"),
        python("pyroute2-async"),
        Contestant("ip-batch", lambda: measure_in_fresh_namespace(n, ip_batch), reference="aionlmmap-request-many", note="ip -batch (process wall time)"),
    ]


TARGETS = [
    ratio_target("batched adds beat one-at-a-time pyroute2", "aionlmmap-request-many", "pyroute2-iproute", 1.0),
    ratio_target("batched adds keep up with ip -batch (issue 16: >= 1.0x)", "aionlmmap-request-many", "ip-batch", 1.0),
    ratio_target("pure Python: batched adds keep up with ip -batch", "aionlmmap-request-many-pure", "ip-batch", 1.0),
]


def run(options: Options, reporter: Reporter) -> None:
    n = options.size(DEFAULT_N)
    summaries = options.measure("tx-batch", UNIT, contestants(n), n, reporter.progress)
    reporter.scenario(f"{TITLE}, N={n}", summaries, TARGETS, extra_columns=("installed",))
