"""Syscalls per 1,000 messages, uring vs emulated vs C, in a 100,000-route
dump and a 100,000-event route storm: ``python -m benchmarks.uring_syscalls``
(root; creates and deletes its own namespaces).

Each contestant runs twice: once timed (no tracer), once under
``strace -c -f`` attached after its setup (Python: at its ``ready``; the C
programs are traced whole, a few dozen startup calls included), so the
counts are those of the measured part. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from . import cbuild
from .netns import Namespace, namespace
from .runner import REPO, child_env
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


def _python_child(space: Namespace, mode: str, backend: str, traced: bool, storm_n: int) -> tuple[dict[str, Any], dict[str, int]]:
    argv = [*space.exec_prefix(), sys.executable, "-m", "benchmarks.uring_child", mode, backend]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
    assert child.stdin is not None and child.stdout is not None
    counts: dict[str, int] = {}
    tracer = None
    handle, trace_path = tempfile.mkstemp(prefix="aionlmmap-strace-")
    os.close(handle)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{backend} {mode}: the child did not get ready")
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


def _row(name: str, mode: str, timed: dict[str, Any], counts: dict[str, int], traced: dict[str, Any]) -> dict[str, Any]:
    total = sum(counts.values())
    messages = max(1, int(traced["count"]))
    main = sorted(counts.items(), key=lambda item: -item[1])[:4]
    return {
        "scenario": mode,
        "contestant": name,
        "messages": int(timed["count"]),
        "rate": int(timed["count"]) / float(timed["elapsed"]),
        "syscalls_per_1000": 1000 * total / messages,
        "top": ", ".join(f"{call} {1000 * n / messages:.1f}" for call, n in main),
        "overruns": timed.get("overruns", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000, help="route events in the storm (adds and deletes)")
    parser.add_argument("--scenarios", default="dump,storm", help="comma-separated: dump, storm")
    options = parser.parse_args()
    scenarios = options.scenarios.split(",")
    if shutil.which("strace") is None:
        raise SystemExit("strace is needed: apt-get install strace")
    rows: list[dict[str, Any]] = []
    if "dump" in scenarios:
        rows += _dumps(options.routes)
    if "storm" in scenarios:
        rows += _storms(options.events)
    print(f"{'scenario':8} {'contestant':10} {'messages':>9} {'rate/s':>10} {'syscalls/1000':>14}  top calls per 1000 messages")
    for row in rows:
        print(f"{row['scenario']:8} {row['contestant']:10} {row['messages']:>9} {row['rate']:>10.0f} {row['syscalls_per_1000']:>14.1f}  {row['top']}")
    print(json.dumps(rows))


def _dumps(routes: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with namespace("uring-dump") as space:
        space.add_route_device()
        space.add_routes(routes)
        for name in (*BACKENDS, "c"):
            if name == "c":
                timed, _ = _c_child(space, "dump", False, 0)
                traced, counts = _c_child(space, "dump", True, 0)
            else:
                timed, _ = _python_child(space, "dump", name, False, 0)
                traced, counts = _python_child(space, "dump", name, True, 0)
            rows.append(_row(name, "dump", timed, counts, traced))
    return rows


def _storms(events: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    storm_n = events // 2
    for name in (*BACKENDS, "c"):
        results = []
        for traced_run in (False, True):
            with namespace("uring-storm") as space:
                space.add_route_device()
                if name == "c":
                    results.append(_c_child(space, "storm", traced_run, storm_n))
                else:
                    results.append(_python_child(space, "storm", name, traced_run, storm_n))
        rows.append(_row(name, "storm", results[0][0], results[1][1], results[1][0]))
    return rows


if __name__ == "__main__":
    main()
