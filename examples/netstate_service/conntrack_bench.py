"""``/api/conntrack`` with many entries (as root; the entries live in a
throwaway namespace that is deleted afterwards)::

    python -m examples.netstate_service.conntrack_bench --entries 10000

Creates the entries through ctnetlink (``ct.create``, UDP, 600 s), starts
the service with a ConntrackView on loopback, and prints the time until the
view is ready, the wall time of whole HTTP requests (summary only, every
entry, a filter that matches one), and the latency from ``ct.create`` to the
``change`` event on an SSE client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
import uuid

import aiohttp
from aiohttp import web

from .app import Settings, create_app, create_runner
from .conntrack_view import ConntrackView
from .service import NetStateService
from .source import rtnl_source
from .sse_client import read_events


def _milliseconds(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.2f} ms, worst {max(samples) * 1e3:7.2f} ms"


def _spec(number: int) -> object:
    from aionlmmap.families.netfilter.conntrack import TupleSpec

    return TupleSpec(f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}", "192.0.2.1", "udp", sport=1024 + number % 60000, dport=53)


async def measure(netns: str, entries: int, requests: int, events: int) -> None:
    from aionlmmap.families.netfilter import conntrack

    async with conntrack.open(netns=netns) as ct:
        started = time.perf_counter()
        for number in range(entries):
            await ct.create(_spec(number), timeout=600)  # type: ignore[arg-type]
        print(f"{entries} entries created in {time.perf_counter() - started:.2f} s")
        service = NetStateService(lambda: rtnl_source(netns=netns, neighbours=False))
        view = ConntrackView(service, netns, limit=entries + events + 1)
        runner = create_runner(create_app(service, Settings(), None, None, view))
        started = time.perf_counter()
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            await view.wait_ready(120)
            print(f"view ready with {len(view.flows)} entries after {time.perf_counter() - started:.2f} s")
            async with aiohttp.ClientSession() as session:
                for label, query in (("summary only (limit=0)", "?limit=0"), ("every entry", "?limit=100000"), ("one entry by filter", "?protocol=udp&sport=1024&src=10.0.0.0")):
                    samples = []
                    for _ in range(requests):
                        started = time.perf_counter()
                        async with session.get(base + "/api/conntrack" + query) as response:
                            body = await response.read()
                        samples.append(time.perf_counter() - started)
                    print(f"  GET /api/conntrack {label:24s} {len(body) / 1024:8.0f} KiB  {_milliseconds(samples)}")
                async with session.get(base + "/api/events") as response:
                    stream = read_events(response)
                    started = time.perf_counter()
                    first = await anext(stream)
                    print(f"  SSE resync with the table: {len(first.data) / 1024:.0f} KiB in {(time.perf_counter() - started) * 1e3:.0f} ms")
                    latencies = []
                    for number in range(entries, entries + events):
                        sent = time.perf_counter()
                        await ct.create(_spec(number), timeout=600)  # type: ignore[arg-type]
                        sport = 1024 + number % 60000
                        async with asyncio.timeout(10):
                            async for event in stream:
                                change = event.json()
                                if change["kind"] == "conntrack" and change["obj"]["original"].get("sport") == sport:
                                    break
                        latencies.append(time.perf_counter() - sent)
                    print(f"  ct.create -> SSE change event:             {_milliseconds(latencies)} ({events} events)")
        finally:
            await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.netstate_service.conntrack_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--events", type=int, default=50)
    arguments = parser.parse_args()
    netns = f"netstate-bench-{uuid.uuid4().hex[:8]}"  # not aionlmmap-bench-*: tests/test_benchmarks.py counts those
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=60)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, timeout=60)
        asyncio.run(measure(netns, arguments.entries, arguments.requests, arguments.events))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False, timeout=120)


if __name__ == "__main__":
    main()
