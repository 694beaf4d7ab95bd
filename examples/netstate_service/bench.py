"""Scrape time of ``/metrics`` with many links (as root; the links live in a
throwaway namespace that is deleted afterwards)::

    python -m examples.netstate_service.bench --links 1000 --scrapes 30

Prints the median and worst wall time of a whole HTTP scrape (and the
CPU time it took, which a busy machine disturbs less), and of its parts: the RTM_GETSTATS dump, the node_network_* rendering, and, for
comparison, rendering the same samples through prometheus_client's
``generate_latest``.
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
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily

from .app import Settings, create_app, create_runner
from .metrics import NETDEV_COUNTERS, NetworkMetrics, StatsReader, render_metrics
from .service import NetStateService
from .source import rtnl_source


def _ip(*args: str, input: str | None = None) -> None:
    subprocess.run(["ip", *args], check=True, input=input, text=True, capture_output=True, timeout=300)


def _milliseconds(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:6.2f} ms, worst {max(samples) * 1e3:6.2f} ms"


class _Collected:
    def __init__(self, families: list[CounterMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[CounterMetricFamily]:
        return self.families


async def measure(netns: str, scrapes: int) -> None:
    service = NetStateService(lambda: rtnl_source(netns=netns, neighbours=False, register_ring=service.register_ring))
    reader = StatsReader(netns)
    app = create_app(service, Settings(), reader)
    runner = create_runner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        if not await service.wait_ready(60):
            raise SystemExit("the service did not load the namespace's state within 60 s")
        links = service.state.objects("link")
        print(f"{len(links)} links in the view")
        async with aiohttp.ClientSession() as session:
            http, http_cpu, sizes = [], [], set()
            for _ in range(scrapes):
                started, cpu = time.perf_counter(), time.process_time()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    body = await response.read()
                http.append(time.perf_counter() - started)
                http_cpu.append(time.process_time() - cpu)
                sizes.add(len(body))
        dumps, renders, client_renders, conntrack, bodies, bodies_cpu = [], [], [], [], [], []
        network = NetworkMetrics()
        for _ in range(scrapes):
            started = time.perf_counter()
            stats = await reader.read()
            dumps.append(time.perf_counter() - started)
            started, cpu = time.perf_counter(), time.process_time()
            await render_metrics(service, reader, network)
            bodies.append(time.perf_counter() - started)
            bodies_cpu.append(time.process_time() - cpu)
            started = time.perf_counter()
            await reader.conntrack()
            conntrack.append(time.perf_counter() - started)
            started = time.perf_counter()
            network.render(links, stats)
            renders.append(time.perf_counter() - started)
            started = time.perf_counter()
            families = []
            for key, fields in NETDEV_COUNTERS:
                family = CounterMetricFamily(f"node_network_{key}", f"Network device statistic {key}.", labels=["device"])
                for link in links:
                    counters = stats.get(link.ifindex)
                    if counters is not None:
                        family.add_metric([link.ifname], sum(getattr(counters, field) for field in fields))
                families.append(family)
            generate_latest(_Collected(families))  # type: ignore[arg-type]
            client_renders.append(time.perf_counter() - started)
        samples_per_scrape = body.count(b"\n") - body.count(b"\n#")
        print(f"/metrics over HTTP ({samples_per_scrape} samples, {max(sizes)} bytes): {_milliseconds(http)}")
        print(f"  CPU time of it (server and client):        {_milliseconds(http_cpu)}")
        print(f"  the whole body, without HTTP:              {_milliseconds(bodies)}")
        print(f"  CPU time of it:                            {_milliseconds(bodies_cpu)}")
        print(f"  RTM_GETSTATS dump + decode:                {_milliseconds(dumps)}")
        print(f"  ctnetlink conntrack count request:         {_milliseconds(conntrack)}")
        print(f"  node_network_* rendering (metrics.py):     {_milliseconds(renders)}")
        ratio = statistics.median(client_renders) / statistics.median(renders)
        print(f"  counters only via prometheus_client:       {_milliseconds(client_renders)} ({ratio:.1f}x the whole rendering)")
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.netstate_service.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=1000, help="links to create (veth pairs count as two)")
    parser.add_argument("--scrapes", type=int, default=30)
    arguments = parser.parse_args()
    netns = f"netstate-bench-{uuid.uuid4().hex[:8]}"  # not aionlmmap-bench-*: tests/test_benchmarks.py counts those
    _ip("netns", "add", netns)
    try:
        _ip("-n", netns, "link", "set", "lo", "up")
        pairs = max(arguments.links // 2, 1)
        _ip("-n", netns, "-batch", "-", input="".join(f"link add bv{n} type veth peer name bv{n}p\n" for n in range(pairs)))
        _ip("-n", netns, "-batch", "-", input="".join(f"link set bv{n} up\nlink set bv{n}p up\n" for n in range(pairs)))
        asyncio.run(measure(netns, arguments.scrapes))
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False, timeout=120)


if __name__ == "__main__":
    main()
