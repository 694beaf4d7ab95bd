"""The long runs behind the stress suite (issue 14).

    python -m benchmarks.stress fuzz [--cases N] [--seed S] [--decoder NAME]
        N mutated real messages per decoder (tests/decoder_fuzz.py): prints
        cases, crashes (distinct sites, with a reproducing hex payload),
        the slowest call, and the rate.
    python -m benchmarks.stress storm [--messages N] [--speeds MS,...] [--loop asyncio|uvloop]
        slow consumers under route-notification storms: received, overrun
        reports, reported lost, the kernel's drop count, per speed.

Needs root (throwaway network namespaces, never the host's own).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))


def _run(*args: str, input: str | None = None) -> None:
    result = subprocess.run(args, capture_output=True, text=True, input=input, timeout=120)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")


class Netns:
    def __enter__(self) -> str:
        self.name = f"aionlmmap-stress-{uuid.uuid4().hex[:8]}"
        _run("ip", "netns", "add", self.name)
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        return self.name

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def fuzz(cases: int, seed: int, only: str | None) -> int:
    import decoder_fuzz
    from rtnl_helpers import build_random_config

    with Netns() as netns:
        build_random_config(netns, 7)
        _run("ip", "netns", "exec", netns, "nft", "-f", "-", input=decoder_fuzz.NFT_RULESET)
        seeds = decoder_fuzz.capture_seeds(netns)
    rng = random.Random(seed)
    print(f"seed {seed}; {len(seeds)} seed messages")
    failures = 0
    for name in sorted(decoder_fuzz.DECODERS):
        if only and name != only:
            continue
        group = [s for s in seeds if s.name == name]
        crashes: dict[str, str] = {}
        slowest = 0.0
        started = time.monotonic()
        for _ in range(cases):
            seed_message = rng.choice(group)
            tree_edits = [(rng.randrange(1 << 16), rng.randrange(9), rng.randrange(65), rng.randbytes(rng.randrange(13))) for _ in range(rng.randrange(5))]
            byte_edits = [(rng.randrange(6), rng.randrange(1 << 16), rng.randrange(256)) for _ in range(rng.randrange(4))]
            payload = decoder_fuzz.mutate(seed_message, tree_edits, byte_edits)
            call = time.thread_time()
            try:
                decoder_fuzz.check(name, seed_message.message_type, payload)
            except AssertionError as exc:
                crashes.setdefault("slow", f"{exc}")
            except Exception as exc:  # a crash: anything but DecodeError
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                site = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
                crashes.setdefault(site, f"type {seed_message.message_type:#x} payload {payload.hex()}")
            slowest = max(slowest, time.thread_time() - call)
        elapsed = time.monotonic() - started
        print(f"{name:20} {cases} cases, {len(crashes)} crash sites, slowest {slowest * 1000:.2f} ms, {cases / elapsed:,.0f} cases/s")
        for site, example in crashes.items():
            print(f"    {site}: {example[:300]}")
        failures += len(crashes)
    return 1 if failures else 0


async def _storm(messages: int, speeds: list[float], rounds: int) -> None:
    import aionlmmap
    from aionlmmap.constants import RTNLGRP_IPV4_ROUTE
    from aionlmmap._frame_keeping import socket_drops
    from test_stress_overrun import Tally, consume, route_device, settle, storm_batch

    for ms in speeds:
        with Netns() as netns:
            route_device(netns)
            async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_IPV4_ROUTE], netns=netns) as ring:
                tally = Tally()
                consumer = asyncio.create_task(consume(ring, tally, ms / 1000, random.Random(1)))
                batch = storm_batch(messages // rounds, rounds)
                chunks = [batch.splitlines(keepends=True)[i : i + 2000] for i in range(0, messages, 2000)]
                for chunk in chunks:  # bursts with pauses: several losses, each reported
                    await asyncio.to_thread(_run, "ip", "-n", netns, "-batch", "-", input="".join(chunk))
                    await asyncio.sleep(0.2)
                await settle(tally, quiet=1.0, limit=600)
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
                drops = socket_drops(ring._sock)
                sent = (messages // rounds) * rounds
                verdict = "exact" if tally.received + tally.reported_lost == sent else "MISMATCH"
                print(f"{ms:5} ms/msg: sent {sent}, received {tally.received}, reports {tally.reports}, reported lost "
                      f"{tally.reported_lost}, kernel drops {drops}, ring_full {ring.stats.ring_full}: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fuzz", "storm"])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--decoder", default=None)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--speeds", default="0,0.05,0.2,1")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    options = parser.parse_args()
    if options.what == "fuzz":
        return fuzz(options.cases, options.seed if options.seed is not None else random.randrange(1 << 30), options.decoder)
    speeds = [float(s) for s in options.speeds.split(",")]
    coroutine = _storm(options.messages, speeds, 3)
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(coroutine)
    else:
        asyncio.run(coroutine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
