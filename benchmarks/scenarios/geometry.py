"""Scenario 5, ring geometry sweep: aionlmmap's raw route dump (as in
scenario 1) with RX frame size x frame count varied, to choose defaults.

A frame smaller than the kernel's dump chunk (up to 32 KiB once a 32 KiB
recvmsg was seen) cannot hold a chunk: the emulated backend spills it into
a COPY frame (one more copy), the kernel ring would COPY it too. Frame
memory is frame_size x frame_nr and is touched as frames are used, so it
shows up in the peak RSS.
"""

from __future__ import annotations

from ..netns import namespace
from ..runner import Contestant, Reporter, python_contestant_argv, python_sample
from . import Options

TITLE = "Scenario 5: RX ring geometry (raw route dump)"
DEFAULT_N = 100_000
UNIT = "msgs/s"
FRAME_SIZES = (4096, 16384, 36864, 65536)
FRAME_COUNTS = (8, 64, 256)
#: aionlmmap.DEFAULT_RX, the reference every geometry is compared with
DEFAULT_NAME = "36864x64"


def contestants(prefix: list[str], n: int) -> list[Contestant]:
    items = []
    for frame_size in FRAME_SIZES:
        for frame_nr in FRAME_COUNTS:
            name = f"{frame_size}x{frame_nr}"
            argv = python_contestant_argv(prefix, "route_dump", "aionlmmap-raw", "--frame-size", str(frame_size), "--frame-nr", str(frame_nr))
            ring_mib = frame_size * frame_nr / (1 << 20)
            items.append(
                Contestant(name, (lambda argv=argv, name=name: python_sample(name, argv, timeout=120 + n / 500)), reference=DEFAULT_NAME, note=f"{ring_mib:.2f} MiB of RX frames")
            )
    return items


def run(options: Options, reporter: Reporter) -> None:
    n = options.size(DEFAULT_N)
    with namespace("geom") as space:
        reporter.progress(f"[geometry] adding {n} routes in {space.name}")
        space.add_route_device()
        space.add_routes(n)
        summaries = options.measure("geometry", UNIT, contestants(space.exec_prefix(), n), n, reporter.progress)
    reporter.scenario(f"{TITLE}, N={n} (frame_size x frame_nr; x aionlmmap = the default 36864x64 / this)", summaries, extra_columns=("frames", "copy_frames"))
