"""Rates and syscalls per 1,000 messages, uring vs emulated vs C, in a
100,000-route dump, a 100,000-event route storm and 50,000 nfqueue packets:
``python -m benchmarks.uring_syscalls [--repeat 3] [--scenarios dump,storm,nfqueue]``
(root; creates and deletes its own namespaces).

Each Python contestant runs ``--repeat`` times untimed by a tracer, the
backends taking turns (emulated, uring, emulated, uring, ...) so that the
load of a shared machine falls on both alike; the row shows the median
rate, and the median CPU time (user + system) per message of the receiving
process, where io_uring's receive work is counted too. Then once more under
``strace -c -f`` attached after its setup (Python: at its ``ready``; the C
programs are traced whole, a few dozen startup calls included), so the
counts are those of the measured part. The nfqueue rows are timed on a
backlog queued before the consumer starts (like the ``-prequeued``
contestants of scenario 3), the C row there is left out (scenario 3 has
it). Prints one table, the uring/emulated ratios, then the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from . import cbuild
from .netns import Namespace, namespace, namespace_pair
from .runner import REPO, child_env, run_child
from .scenarios.nfqueue import PAYLOAD, PORT, RECEIVER_ADDRESS, install_queue_rule
from .scenarios.storm import storm_commands

BACKENDS = ("emulated", "uring")


def _strace_counts(path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(path) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) in (5, 6) and fields[-1] != "total" and fields[3].isdigit():
                counts[fields[-1]] = int(fields[3])
    return counts


def _python_child(space: Namespace, mode: str, backend: str, traced: bool, storm_n: int, flood: Any = None) -> tuple[dict[str, Any], dict[str, int]]:
    argv = [*space.exec_prefix(), sys.executable, "-m", "benchmarks.uring_child", mode, backend, str(storm_n)]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
    assert child.stdin is not None and child.stdout is not None
    counts: dict[str, int] = {}
    tracer = None
    handle, trace_path = tempfile.mkstemp(prefix="aionlmmap-strace-")
    os.close(handle)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{backend} {mode}: the child did not get ready")
        if flood is not None:
            flood()  # the nfqueue backlog, queued before the consumer starts
        if traced:
            tracer = subprocess.Popen(["strace", "-qq", "-c", "-f", "-o", trace_path, "-p", str(child.pid)], stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let strace attach to every thread
        child.stdin.write("go\n")
        child.stdin.flush()
        if mode == "storm":
            time.sleep(0.2)
            space.ip_batch(storm_commands(storm_n))
        out, _ = child.communicate(timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        if tracer is not None:
            tracer.wait(timeout=60)
            counts = _strace_counts(trace_path)
    finally:
        if child.poll() is None:
            child.kill()
        os.unlink(trace_path)
    return result, counts


def _c_child(space: Namespace, mode: str, traced: bool, storm_n: int) -> tuple[dict[str, Any], dict[str, int]]:
    handle, trace_path = tempfile.mkstemp(prefix="aionlmmap-strace-")
    os.close(handle)
    view = trace_path + ".view"
    try:
        binary = str(cbuild.build("dump_routes" if mode == "dump" else "storm_receiver"))
        args = [binary] if mode == "dump" else [binary, str(8 << 20), view]
        prefix = ["strace", "-qq", "-c", "-f", "-o", trace_path] if traced else []
        child = subprocess.Popen([*space.exec_prefix(), *prefix, *args], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        if mode == "storm":
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the C storm receiver did not get ready")
            space.ip_batch(storm_commands(storm_n))
        out, _ = child.communicate(timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        result.setdefault("count", result.get("received", 0))
        return result, _strace_counts(trace_path) if traced else {}
    finally:
        for path in (trace_path, view):
            if os.path.exists(path):
                os.unlink(path)


def _row(name: str, mode: str, timed: list[dict[str, Any]], counts: dict[str, int], traced: dict[str, Any]) -> dict[str, Any]:
    total = sum(counts.values())
    messages = max(1, int(traced["count"]))
    main = sorted(counts.items(), key=lambda item: -item[1])[:4]
    rates = [int(run["count"]) / float(run["elapsed"]) for run in timed]
    cpu = [1e6 * float(run["cpu"]) / max(1, int(run["count"])) for run in timed if "cpu" in run]
    system = [1e6 * float(run["system"]) / max(1, int(run["count"])) for run in timed if "system" in run]
    return {
        "scenario": mode,
        "contestant": name,
        "messages": int(timed[0]["count"]),
        "rate": statistics.median(rates),
        "rates": [round(rate) for rate in rates],
        "cpu_us_per_message": statistics.median(cpu) if cpu else None,
        "system_us_per_message": statistics.median(system) if system else None,
        "syscalls_per_1000": 1000 * total / messages,
        "top": ", ".join(f"{call} {1000 * n / messages:.1f}" for call, n in main),
        "overruns": sum(int(run.get("overruns", 0)) for run in timed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000, help="route events in the storm (adds and deletes)")
    parser.add_argument("--packets", type=int, default=50_000, help="nfqueue packets queued, then accepted")
    parser.add_argument("--scenarios", default="dump,storm,nfqueue", help="comma-separated: dump, storm, nfqueue")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per Python contestant (median reported)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated Python backends")
    parser.add_argument("--no-c", action="store_true", help="leave out the C contestants")
    options = parser.parse_args()
    backends = tuple(options.backends.split(","))
    repeat = max(1, options.repeat)
    scenarios = options.scenarios.split(",")
    if shutil.which("strace") is None:
        raise SystemExit("strace is needed: apt-get install strace")
    rows: list[dict[str, Any]] = []
    with_c = not options.no_c
    if "dump" in scenarios:
        rows += _dumps(options.routes, backends, repeat, with_c)
    if "storm" in scenarios:
        rows += _storms(options.events, backends, repeat, with_c)
    if "nfqueue" in scenarios:
        rows += _nfqueues(options.packets, backends, repeat)
    print(f"{'scenario':8} {'contestant':10} {'messages':>9} {'rate/s':>10} {'cpu us/msg':>14} {'syscalls/1000':>14}  top calls per 1000 messages (timed rates)")
    for row in rows:
        cpu = "-"
        if row["cpu_us_per_message"] is not None:
            cpu = f"{row['cpu_us_per_message']:.2f} ({row['system_us_per_message']:.2f} sys)"
        print(
            f"{row['scenario']:8} {row['contestant']:10} {row['messages']:>9} {row['rate']:>10.0f} {cpu:>14} "
            f"{row['syscalls_per_1000']:>14.1f}  {row['top']} ({', '.join(map(str, row['rates']))})"
        )
    for scenario in scenarios:
        by_name = {row["contestant"]: row for row in rows if row["scenario"] == scenario}
        if "uring" in by_name and "emulated" in by_name:
            uring, emulated = by_name["uring"], by_name["emulated"]
            cpu = ""
            if uring["cpu_us_per_message"] and emulated["cpu_us_per_message"]:
                cpu = f", cpu per message {uring['cpu_us_per_message'] / emulated['cpu_us_per_message']:.2f}x"
            print(f"{scenario}: uring/emulated rate {uring['rate'] / emulated['rate']:.2f}x{cpu}")
    print(json.dumps(rows))


def _timed_turns(backends: tuple[str, ...], repeat: int, run_once: Any) -> dict[str, list[dict[str, Any]]]:
    """``repeat`` timed runs of each backend, taking turns."""
    timed: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
    for _ in range(repeat):
        for name in backends:
            timed[name].append(run_once(name))
    return timed


def _dumps(routes: int, backends: tuple[str, ...], repeat: int, with_c: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with namespace("uring-dump") as space:
        space.add_route_device()
        space.add_routes(routes)
        timed = _timed_turns(backends, repeat, lambda name: _python_child(space, "dump", name, False, 0)[0])
        for name in backends:
            traced, counts = _python_child(space, "dump", name, True, 0)
            rows.append(_row(name, "dump", timed[name], counts, traced))
        if with_c:
            c_timed, _ = _c_child(space, "dump", False, 0)
            traced, counts = _c_child(space, "dump", True, 0)
            rows.append(_row("c", "dump", [c_timed], counts, traced))
    return rows


def _storm_once(name: str, traced: bool, storm_n: int) -> tuple[dict[str, Any], dict[str, int]]:
    with namespace("uring-storm") as space:
        space.add_route_device()
        if name == "c":
            return _c_child(space, "storm", traced, storm_n)
        return _python_child(space, "storm", name, traced, storm_n)


def _storms(events: int, backends: tuple[str, ...], repeat: int, with_c: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    storm_n = events // 2
    timed = _timed_turns(backends, repeat, lambda name: _storm_once(name, False, storm_n)[0])
    for name in backends:
        traced, counts = _storm_once(name, True, storm_n)
        rows.append(_row(name, "storm", timed[name], counts, traced))
    if with_c:
        c_timed, _ = _storm_once("c", False, storm_n)
        traced, counts = _storm_once("c", True, storm_n)
        rows.append(_row("c", "storm", [c_timed], counts, traced))
    return rows


def _nfqueue_once(name: str, traced: bool, packets: int) -> tuple[dict[str, Any], dict[str, int]]:
    flood_binary = str(cbuild.build("udp_flood"))
    with namespace_pair("uring-nfq") as (sender, receiver):
        install_queue_rule(receiver)

        def flood() -> None:
            result = run_child([*sender.exec_prefix(), flood_binary, RECEIVER_ADDRESS, str(PORT), str(packets), str(PAYLOAD)], timeout=120)
            if result.returncode != 0:
                raise RuntimeError(f"the flood sender failed: {result.stderr.strip()[-300:]}")

        return _python_child(receiver, "nfqueue", name, traced, packets, flood=flood)


def _nfqueues(packets: int, backends: tuple[str, ...], repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    timed = _timed_turns(backends, repeat, lambda name: _nfqueue_once(name, False, packets)[0])
    for name in backends:
        traced, counts = _nfqueue_once(name, True, packets)
        rows.append(_row(name, "nfqueue", timed[name], counts, traced))
    return rows


if __name__ == "__main__":
    main()
