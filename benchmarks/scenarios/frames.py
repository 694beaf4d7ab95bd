"""Frames per second through the two backends: benchmarks/frames_per_second.py,
written with the kernel backend (the kernel backend against the simulated
kernel vs the emulated backend against the real kernel). This scenario runs
that script and relays the JSON lines it prints, tagged ``"scenario":
"frames"``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..runner import REPO, Reporter, child_env, run_child
from . import Options

TITLE = "Frames per second (kernel backend vs emulated)"
DEFAULT_N = 0  # the script's own default
SCRIPT = REPO / "benchmarks" / "frames_per_second.py"


def run(options: Options, reporter: Reporter) -> None:
    if not Path(SCRIPT).exists():
        reporter.line({"scenario": "frames", "status": "skipped", "reason": f"{SCRIPT.relative_to(REPO)} does not exist (yet)"})
        return
    argv = [sys.executable, str(SCRIPT)]
    if options.n is not None:
        argv += ["--acks", str(options.n)]  # the script's size knob
    result = run_child(argv, timeout=600, env=child_env())
    records = 0
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            reporter.line({"scenario": "frames", **record})
            records += 1
    if result.returncode != 0 or not records:
        reporter.line({"scenario": "frames", "status": "failed", "reason": f"exit {result.returncode}: {result.stderr.strip()[-400:]}"})
    elif not reporter.json_only:
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip().startswith("{")]
        lines = [f"== {TITLE} =="]
        for row in rows:
            lines.append(
                f"{row.get('workload', '?'):6} {row.get('contestant', '?'):26} {row.get('frames_per_second', 0):>10} frames/s "
                f"{row.get('messages_per_second', 0):>10} msgs/s  {row.get('us_per_frame', 0)} us/frame"
            )
        reporter.tables.append("\n".join(lines))
