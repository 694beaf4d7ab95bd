"""``python3 -m benchmarks [scenario ...] [--n N] [--repeat R]``

Runs the chosen scenarios (all by default) in throwaway network namespaces
and prints one JSON line per contestant and per target, then a readable
table per scenario. Progress goes to stderr. Needs root (namespaces).

Examples::

    python3 -m benchmarks                          # everything, default sizes
    python3 -m benchmarks route-dump --n 20000 --repeat 5
    python3 -m benchmarks storm --only aionlmmap   # contestants whose name contains "aionlmmap"
    python3 -m benchmarks --json --out results.jsonl
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from .netns import BenchmarkSetupError, require_root
from .runner import Reporter, precompile
from .scenarios import SCENARIOS, Options, load


def machine_record(argv: list[str]) -> dict[str, object]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "machine": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "command": "python3 -m benchmarks " + " ".join(argv),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks", description="aionlmmap benchmark suite")
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=f"any of: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--n", type=int, default=None, help="scenario size (routes, events, packets); default per scenario")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per contestant (default 3)")
    parser.add_argument("--only", action="append", default=[], help="run only contestants whose name contains this (repeatable)")
    parser.add_argument("--json", action="store_true", help="print only the JSON lines, no tables")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.repeat < 1 or (args.n is not None and args.n < 1):
        parser.error("--repeat and --n must be positive")
    try:
        require_root()
    except BenchmarkSetupError as error:
        print(f"benchmarks: {error}", file=sys.stderr)
        return 2
    precompile()
    reporter = Reporter(json_only=args.json, out=args.out)
    reporter.line(machine_record(argv))
    options = Options(n=args.n, repeat=args.repeat, only=tuple(args.only))
    failed = False
    for name in args.scenarios or list(SCENARIOS):
        try:
            load(name).run(options, reporter)
        except BenchmarkSetupError as error:
            failed = True
            reporter.line({"scenario": name, "status": "setup-failed", "reason": str(error)})
            reporter.progress(f"[{name}] setup failed: {error}")
    reporter.finish()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
