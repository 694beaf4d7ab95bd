"""Measuring contestants: child processes, samples, medians, ratios, output.

Every contestant runs in its own child process, so the peak RSS reported
(``ru_maxrss`` from ``wait4``) belongs to that contestant alone. Contestants
are measured back to back and the repetitions are interleaved (A B C, A B C,
...), so a noisy neighbour slows every contestant alike and the ratios stay
meaningful on a busy machine.

Timing: Python contestants time their own measured section (after imports
and setup) and print it; command-line contestants (``ip -j``, the
``aionlmmap`` CLI, ``ip -batch``) are timed from fork to exit, startup
included, because that is what their users wait for.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

__all__ = [
    "REPO",
    "Child",
    "ProcessResult",
    "Sample",
    "Contestant",
    "Target",
    "Skipped",
    "ContestantFailed",
    "Reporter",
    "measure_all",
    "python_contestant_argv",
    "parse_result",
    "python_sample",
    "command_sample",
    "count_json_records",
    "ratio_target",
    "child_env",
    "run_child",
]

REPO = Path(__file__).resolve().parent.parent


class Skipped(Exception):
    """This contestant cannot run here; the message says why and what to install."""


class ContestantFailed(Exception):
    """The contestant ran but failed (non-zero exit, no result, timeout)."""


@attrs.frozen
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    wall: float  #: seconds from start to exit
    peak_rss_kib: int  #: ru_maxrss of the child (and its waited-for children)


class Child:
    """A child process whose stdout lines can be awaited while it runs.

    It gets its own session (process group) so a timeout kills it and any
    helper it started, and nothing else."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, stdin_data: str | None = None, keep_stdin: bool = False) -> None:
        self.argv = list(argv)
        self._rss_file: str | None = None
        wrapper = _peak_rss_wrapper()
        if wrapper is not None:
            handle, self._rss_file = tempfile.mkstemp(prefix="aionlmmap-bench-rss-")
            os.close(handle)
            argv = [wrapper, self._rss_file, *argv]
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._result: ProcessResult | None = None
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data is not None or keep_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        if stdin_data is not None:
            self.write_stdin(stdin_data)
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: TextIO, sink: list[str], announce: bool) -> None:
        for line in stream:
            sink.append(line)
            if announce:
                self._lines.put(line)
        if announce:
            self._lines.put(None)

    def write_stdin(self, text: str) -> None:
        """Write ``text`` to the child's stdin and close it (a "go" signal)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write(text)
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Wait until the child prints a line equal to ``text`` (False on
        timeout or exit)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                return False
            if line is None:
                return False
            if line.strip() == text:
                return True

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def finish(self, timeout: float) -> ProcessResult:
        """Wait for the exit (killing the child after ``timeout`` seconds).
        Calling it again returns the same result."""
        if self._result is not None:
            return self._result
        timer = threading.Timer(timeout, self.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            timer.cancel()
        ended = time.perf_counter()
        # wait4 reaped it: tell Popen, so it never waits for a pid again.
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        for thread in self._threads:
            thread.join(timeout=10)
        returncode = self.proc.returncode
        stderr = "".join(self._stderr)
        if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) and ended - self.started >= timeout:
            stderr += f"\n[killed after the {timeout:.0f} s time limit]"
        peak = usage.ru_maxrss
        if self._rss_file is not None:
            try:
                with open(self._rss_file) as handle:
                    peak = int(handle.read().strip() or peak)
            except (OSError, ValueError):
                pass
            finally:
                os.unlink(self._rss_file)
        self._result = ProcessResult(returncode, "".join(self._stdout), stderr, ended - self.started, peak)
        return self._result


_WRAPPER: list[str | None] = []


def _peak_rss_wrapper() -> str | None:
    """benchmarks/c/peak_rss.c, built once. Without it the peak RSS of a
    child includes the runner's own high-water mark (ru_maxrss survives
    fork and exec), so the figures are only upper bounds."""
    if not _WRAPPER:
        from . import cbuild

        try:
            _WRAPPER.append(str(cbuild.build("peak_rss")))
        except cbuild.CompilerMissing as error:
            print(f"benchmarks: peak RSS figures are upper bounds ({error})", file=sys.stderr)
            _WRAPPER.append(None)
    return _WRAPPER[0]


def run_child(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> ProcessResult:
    return Child(argv, env=env).finish(timeout)


#: the two cores a Python contestant can run on (aionlmmap._extensions):
#: the compiled twins where built, and pure Python (AIONLMMAP_NO_EXTENSIONS=1)
CORES = ("compiled", "pure")


def compiled_core_built() -> bool:
    """Whether aionlmmap/_speedups was built (pip install, or
    ``python setup.py build_ext --inplace`` in a checkout)."""
    import importlib.util

    return importlib.util.find_spec("aionlmmap._speedups") is not None


def child_env(core: str | None = None) -> dict[str, str]:
    """The environment of a contestant process. ``core="pure"`` selects
    aionlmmap's pure-Python core, ``"compiled"`` its compiled twins
    (Skipped when they are not built); None leaves the choice to the
    caller's environment."""
    env = dict(os.environ)
    if core == "pure":
        env["AIONLMMAP_NO_EXTENSIONS"] = "1"
    elif core == "compiled":
        if not compiled_core_built():
            raise Skipped("aionlmmap's compiled core is not built: pip install . (with a C compiler) or python setup.py build_ext --inplace")
        env.pop("AIONLMMAP_NO_EXTENSIONS", None)
    elif core is not None:
        raise ValueError(f"core {core!r}: choose from {CORES}")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONHASHSEED", "0")
    # Every contestant imports compiled modules, as after a pip install
    # (pip byte-compiles; see precompile()): without this, a machine that
    # sets PYTHONDONTWRITEBYTECODE makes the library under test (an
    # editable install) compile itself from source in every run while the
    # installed libraries it is compared with do not.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def precompile() -> None:
    """Byte-compile aionlmmap and the contestant programs once, as pip does
    when it installs a package, so no contestant pays for compiling."""
    import compileall

    for package in ("aionlmmap", "benchmarks"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def python_contestant_argv(prefix: Sequence[str], module: str, *args: str) -> list[str]:
    """argv of ``python -m benchmarks.contestants.MODULE ARGS`` under ``prefix``
    (e.g. ``ip netns exec NS``)."""
    return [*prefix, sys.executable, "-m", f"benchmarks.contestants.{module}", *args]


def parse_result(result: ProcessResult, what: str) -> dict[str, Any]:
    """The last JSON object line a child printed; raises ContestantFailed
    (with its stderr) if it failed or printed none."""
    if result.returncode == 3:
        raise Skipped(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"{what} is not available")
    if result.returncode != 0:
        raise ContestantFailed(f"{what} exited with {result.returncode}: {result.stderr.strip()[-600:]}")
    for line in reversed(result.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)  # type: ignore[no-any-return]
            except json.JSONDecodeError:
                break
    raise ContestantFailed(f"{what} printed no result line: {result.stdout[-300:]!r} {result.stderr[-300:]!r}")


@attrs.frozen
class Sample:
    """One measured run of one contestant."""

    count: int  #: units handled (messages, events, verdicts, routes)
    elapsed: float  #: seconds
    peak_rss_kib: int
    extra_rss_kib: int | None = None  #: peak minus the RSS just before the measured section
    fields: dict[str, Any] = attrs.field(factory=dict)  #: scenario-specific figures


@attrs.frozen
class Contestant:
    name: str
    measure: Callable[[], Sample]
    #: the aionlmmap contestant this one is compared with (None: no ratio)
    reference: str | None = None
    note: str = ""


@attrs.frozen
class Target:
    """A DESIGN.md target: ``check(summaries)`` -> (met or None if it could
    not be evaluated, a short text with the figure)."""

    description: str
    check: Callable[[dict[str, dict[str, Any]]], tuple[bool | None, str]]


def ratio_target(description: str, ours: str, theirs: str, minimum: float) -> Target:
    """aionlmmap contestant ``ours`` must be at least ``minimum`` x the speed of ``theirs``."""

    def check(summaries: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
        a, b = summaries.get(ours), summaries.get(theirs)
        if not a or not b or a.get("status") not in ("ok", "partial") or b.get("status") not in ("ok", "partial") or not b.get("rate"):
            return None, f"not evaluated ({ours} or {theirs} did not run)"
        ratio = a["rate"] / b["rate"]
        return ratio >= minimum, f"{ours} is {ratio:.2f}x {theirs} (target >= {minimum}x)"

    return Target(description, check)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(scenario: str, unit: str, contestant: Contestant, samples: list[Sample]) -> dict[str, Any]:
    elapsed = [s.elapsed for s in samples]
    rates = [s.count / s.elapsed if s.elapsed > 0 else 0.0 for s in samples]
    median_elapsed = _median(elapsed)
    extra = [s.extra_rss_kib for s in samples if s.extra_rss_kib is not None]
    summary: dict[str, Any] = {
        "scenario": scenario,
        "contestant": contestant.name,
        "status": "ok",
        "repeat": len(samples),
        "count": int(_median([s.count for s in samples])),
        "median_s": round(median_elapsed, 6),
        "min_s": round(min(elapsed), 6),
        "max_s": round(max(elapsed), 6),
        "spread_pct": round(100 * (max(elapsed) - min(elapsed)) / median_elapsed, 1) if median_elapsed else 0.0,
        "unit": unit,
        "rate": round(_median(rates), 1),
        "peak_rss_mib": round(_median([s.peak_rss_kib for s in samples]) / 1024, 1),
        "extra_rss_mib": round(_median(extra) / 1024, 1) if extra else None,
        "reference": contestant.reference,
    }
    for key in samples[-1].fields:
        values = [s.fields.get(key) for s in samples]
        if all(isinstance(v, bool) for v in values):
            summary[key] = all(values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            median = _median(values)  # type: ignore[arg-type]
            summary[key] = int(median) if all(isinstance(v, int) for v in values) else round(median, 3)
        else:
            summary[key] = values[-1]
    if contestant.note:
        summary["note"] = contestant.note
    return summary


def measure_all(
    scenario: str,
    unit: str,
    contestants: Sequence[Contestant],
    repeat: int,
    *,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Run every contestant ``repeat`` times, interleaved; return summaries
    by name (with ``aionlmmap_ratio`` filled in)."""
    samples: dict[str, list[Sample]] = {c.name: [] for c in contestants}
    problems: dict[str, tuple[str, str]] = {}
    for round_number in range(repeat):
        for contestant in contestants:
            if contestant.name in problems:
                continue
            progress(f"[{scenario}] {contestant.name} run {round_number + 1}/{repeat}")
            try:
                samples[contestant.name].append(contestant.measure())
            except Skipped as error:
                problems[contestant.name] = ("skipped", str(error))
            except (ContestantFailed, subprocess.TimeoutExpired, OSError, ValueError, RuntimeError) as error:
                problems[contestant.name] = ("failed", f"{type(error).__name__}: {error}")
            if contestant.name in problems:
                progress(f"[{scenario}] {contestant.name}: {problems[contestant.name][0]}: {problems[contestant.name][1]}")
    summaries: dict[str, dict[str, Any]] = {}
    for contestant in contestants:
        if contestant.name in problems and not samples[contestant.name]:
            status, reason = problems[contestant.name]
            summaries[contestant.name] = {"scenario": scenario, "contestant": contestant.name, "status": status, "reason": reason}
            continue
        summary = summarize(scenario, unit, contestant, samples[contestant.name])
        if contestant.name in problems:
            summary["status"] = "partial"
            summary["reason"] = problems[contestant.name][1]
        summaries[contestant.name] = summary
    for summary in summaries.values():
        reference = summaries.get(summary.get("reference") or "")
        if summary.get("rate") and reference and reference.get("rate"):
            # > 1: aionlmmap's reference contestant is that many times faster.
            summary["aionlmmap_ratio"] = round(reference["rate"] / summary["rate"], 3)
    return summaries


class Reporter:
    """Prints one JSON line per contestant and target, then readable tables."""

    def __init__(self, *, json_only: bool = False, out: Path | None = None, stream: TextIO = sys.stdout) -> None:
        self.json_only = json_only
        self.out = out
        self.stream = stream
        self.tables: list[str] = []

    def line(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, sort_keys=False)
        print(text, file=self.stream, flush=True)
        if self.out is not None:
            with self.out.open("a") as handle:
                handle.write(text + "\n")

    def progress(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def scenario(self, title: str, summaries: dict[str, dict[str, Any]], targets: Sequence[Target] = (), extra_columns: Sequence[str] = ()) -> None:
        for summary in summaries.values():
            self.line(summary)
        target_rows = []
        for target in targets:
            met, text = target.check(summaries)
            record = {"scenario": next(iter(summaries.values()))["scenario"] if summaries else title, "target": target.description, "met": met, "detail": text}
            self.line(record)
            target_rows.append(record)
        self.tables.append(format_table(title, summaries, target_rows, extra_columns))

    def finish(self) -> None:
        if self.json_only:
            return
        for table in self.tables:
            print(file=self.stream)
            print(table, file=self.stream)
        self.stream.flush()


def _fmt_rate(rate: float | None) -> str:
    if not rate:
        return "-"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f}"


def format_table(title: str, summaries: dict[str, dict[str, Any]], targets: Sequence[dict[str, Any]], extra_columns: Sequence[str] = ()) -> str:
    header = ["contestant", "median", "spread", "rate", "peak RSS", "extra RSS", "x aionlmmap", *extra_columns]
    rows = [header]
    unit = ""
    for summary in summaries.values():
        if summary["status"] not in ("ok", "partial"):
            rows.append([summary["contestant"], f"{summary['status']}: {summary['reason'][:90]}"])
            continue
        unit = summary["unit"]
        ratio = summary.get("aionlmmap_ratio")
        extra = summary.get("extra_rss_mib")
        rows.append(
            [
                summary["contestant"],
                f"{summary['median_s'] * 1000:.1f} ms" if summary["median_s"] < 10 else f"{summary['median_s']:.2f} s",
                f"±{summary['spread_pct'] / 2:.0f}%",
                _fmt_rate(summary["rate"]),
                f"{summary['peak_rss_mib']:.1f} MiB",
                f"{extra:.1f} MiB" if extra is not None else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                *(str(summary.get(column, "-")) for column in extra_columns),
            ]
        )
    widths = [max(len(row[i]) for row in rows if len(row) > i and len(row) > 2) for i in range(len(header))]
    lines = [f"== {title} (rate in {unit or 'units/s'}; x aionlmmap = aionlmmap's speed / this one's) =="]
    for row in rows:
        if len(row) == 2:
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
        else:
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for target in targets:
        mark = {True: "MET", False: "MISSED", None: "n/a"}[target["met"]]
        lines.append(f"target [{mark}] {target['target']}: {target['detail']}")
    return "\n".join(lines)


_RESULT_KEYS = {"count", "elapsed", "peak_rss_kib", "rss_before_kib"}


def python_sample(name: str, argv: Sequence[str], *, timeout: float, core: str | None = None) -> Sample:
    """Run a contestant program and turn its result line into a Sample (its
    own timing; peak RSS from wait4; extra RSS = its VmHWM minus the RSS it
    had just before the measured section). ``core``: see :func:`child_env`."""
    result = run_child(argv, timeout=timeout, env=child_env(core))
    data = parse_result(result, name)
    extra = None
    if "rss_before_kib" in data and "peak_rss_kib" in data:
        extra = max(0, int(data["peak_rss_kib"]) - int(data["rss_before_kib"]))
    fields = {key: value for key, value in data.items() if key not in _RESULT_KEYS}
    return Sample(int(data["count"]), float(data["elapsed"]), result.peak_rss_kib, extra, fields)


def command_sample(name: str, argv: Sequence[str], count: Callable[[str], int], *, timeout: float, core: str | None = None) -> Sample:
    """Run a command and time it from start to exit; ``count(stdout)`` says
    how many units it produced. ``core``: see :func:`child_env`."""
    result = run_child(argv, timeout=timeout, env=child_env(core))
    if result.returncode != 0:
        raise ContestantFailed(f"{name} exited with {result.returncode}: {result.stderr.strip()[-600:]}")
    return Sample(count(result.stdout), result.wall, result.peak_rss_kib)


def count_json_records(stdout: str) -> int:
    """Records in a JSON array (``ip -j``) or in JSON lines."""
    text = stdout.strip()
    if not text:
        return 0
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return sum(1 for line in text.splitlines() if line.strip().startswith("{"))
    return len(data) if isinstance(data, list) else 1
