"""Helpers shared by the contestant programs (child side)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

__all__ = ["vm_kib", "emit", "unavailable", "run_on_loop", "clock", "Stopwatch"]

clock = time.perf_counter


def vm_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS, VmHWM, ...)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Stopwatch:
    """Times the measured section and notes the RSS just before it, so the
    runner can report the extra memory the section itself needed."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.stopped: float | None = None
        self.rss_before_kib = 0
        self.fields: dict[str, Any] = {}

    def start(self) -> None:
        self.rss_before_kib = vm_kib("VmRSS")
        self.started = clock()

    def stop(self) -> None:
        if self.stopped is None and self.started is not None:
            self.stopped = clock()

    def result(self) -> dict[str, Any]:
        if self.started is None or self.stopped is None:
            raise RuntimeError("the contestant never started or stopped its stopwatch")
        return {"elapsed": self.stopped - self.started, "rss_before_kib": self.rss_before_kib, **self.fields}


def emit(**fields: Any) -> None:
    """Print the result line the runner parses."""
    fields.setdefault("peak_rss_kib", vm_kib("VmHWM"))
    print(json.dumps(fields), flush=True)


def unavailable(reason: str) -> NoReturn:
    """Exit with status 3: the runner reports the contestant as skipped."""
    print(reason, file=sys.stderr, flush=True)
    raise SystemExit(3)


def run_on_loop(main: Callable[[], Awaitable[Any]], loop: str) -> Any:
    """Run ``main()`` on asyncio's default loop or on uvloop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())  # type: ignore[arg-type]
    if loop != "asyncio":
        raise SystemExit(f"unknown loop {loop!r}: asyncio or uvloop")
    return asyncio.run(main())  # type: ignore[arg-type]
