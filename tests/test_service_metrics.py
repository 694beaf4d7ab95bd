"""``/metrics`` against ground truth: the kernel's own counters
(``/proc/net/dev`` of the namespace, which node_exporter's netdev collector
reads in its legacy mode), ``ip -j link``, ``promtool check metrics``, and a
real Prometheus server scraping the service over loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from conftest import ip, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/ is not an installed package

from examples.netstate_service import NetStateService, Settings, StatsReader, create_app, create_runner, rtnl_source  # noqa: E402
from examples.netstate_service.metrics import NETDEV_COUNTERS, escape_label_value  # noqa: E402

# /proc/net/dev columns (dev_seq_printf_stats) by node_exporter's metric key.
PROC_NET_DEV_COLUMNS = (
    "receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo", "receive_frame",
    "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo", "transmit_colls",
    "transmit_carrier", "transmit_compressed",
)  # fmt: skip


def proc_net_dev(netns: str) -> dict[str, dict[str, int]]:
    """device -> counters as the kernel prints them in /proc/net/dev of ``netns``."""
    text = run("ip", "netns", "exec", netns, "cat", "/proc/net/dev").stdout
    out = {}
    for line in text.splitlines()[2:]:
        name, _, numbers = line.partition(":")
        out[name.strip()] = dict(zip(PROC_NET_DEV_COLUMNS, map(int, numbers.split()), strict=True))
    return out


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def quiet(netns: str) -> None:
    """No IPv6 (no router solicitations, no DAD): only the test's traffic moves the counters."""
    run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")


@pytest.fixture
async def metrics_client(netns_pair):
    first, second = netns_pair
    quiet(first)
    quiet(second)
    service = NetStateService(lambda: rtnl_source(netns=first, register_ring=service.register_ring))
    async with TestClient(TestServer(create_app(service, Settings(ping_interval=1.0), StatsReader(first)))) as client:
        assert await service.wait_ready(10)
        yield client, first, second, service


async def scrape(client: TestClient) -> str:
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def test_counters_equal_the_kernels_proc_net_dev_after_real_traffic(metrics_client):
    client, first, _second, _service = metrics_client
    run("ip", "netns", "exec", first, "ping", "-c", "5", "-i", "0.05", "-s", "700", "-q", "10.99.0.2")
    kernel = proc_net_dev(first)
    ours = samples(await scrape(client))
    assert kernel["veth0"]["receive_bytes"] > 5 * 700  # the replies arrived
    for device, counters in kernel.items():
        for key, value in counters.items():
            assert ours[(f"node_network_{key}_total", (("device", device),))] == value, (device, key)
    # The one counter /proc/net/dev lacks: present, and zero on a veth.
    assert ours[("node_network_receive_nohandler_total", (("device", "veth0"),))] == 0
    assert {key for key, _fields in NETDEV_COUNTERS} == {*PROC_NET_DEV_COLUMNS, "receive_nohandler"}


async def test_gauges_follow_the_monitors_view_of_the_links(metrics_client):
    client, first, _second, _service = metrics_client
    ip(first, "link", "set", "veth0", "mtu", "1400")
    ip(first, "link", "set", "veth0", "alias", 'quote " and \\ backslash')
    ip(first, "link", "add", "vdown", "type", "veth", "peer", "name", "vdown-p")
    links = {link["ifname"]: link for link in json.loads(ip(first, "-j", "link", "show").stdout)}
    deadline = time.monotonic() + 10
    while True:  # the monitor applies the changes within milliseconds; bounded wait
        ours = samples(await scrape(client))
        if ours.get(("node_network_mtu_bytes", (("device", "veth0"),))) == 1400 and ("node_network_up", (("device", "vdown"),)) in ours:
            break
        assert time.monotonic() < deadline, "the gauges did not follow the link changes"
        await asyncio.sleep(0.1)
    for name, link in links.items():
        device = (("device", name),)
        assert ours[("node_network_mtu_bytes", device)] == link["mtu"]
        assert ours[("node_network_up", device)] == (1 if link["operstate"] == "UP" else 0)
        assert ours[("node_network_iface_id", device)] == link["ifindex"]
        assert ours[("node_network_transmit_queue_length", device)] == link["txqlen"]
        info = {
            "device": name,
            "address": link["address"],
            "broadcast": link["broadcast"],
            "operstate": link["operstate"].lower(),
            "adminstate": "up" if "UP" in link["flags"] else "down",
            "duplex": "",
            "ifalias": link.get("ifalias", ""),
        }
        assert ours[("node_network_info", tuple(sorted(info.items())))] == 1
        # carrier exists only for a device that is up (sysfs answers EINVAL otherwise)
        carrier = ours.get(("node_network_carrier", device))
        assert carrier == ((1 if "LOWER_UP" in link["flags"] else 0) if "UP" in link["flags"] else None)
    assert ours[("aionlmmap_sse_clients", ())] == 0
    assert ours[("aionlmmap_ring_frames_total", (("ring", "monitor"),))] > 0
    assert ours[("aionlmmap_ring_copy_frames_total", (("ring", "monitor"),))] >= 0
    assert ours[("aionlmmap_ring_frames_total", (("ring", "stats"),))] > 0


async def test_promtool_accepts_the_output(metrics_client):
    client, first, _second, _service = metrics_client
    ip(first, "link", "set", "veth0", "alias", 'line\nbreak "quoted" \\')
    await asyncio.sleep(0.2)
    text = await scrape(client)
    assert "ifalias=\"line\\nbreak \\\"quoted\\\" \\\\\"" in text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_conntrack_entries_equal_the_namespaces_count(metrics_client):
    """node_nf_conntrack_entries{,_limit} equal the namespace's
    nf_conntrack_count and nf_conntrack_max after conntrack saw traffic."""
    client, first, _second, _service = metrics_client
    run("ip", "netns", "exec", first, "nft", "-f", "-",
        input="add table ip track\nadd chain ip track out { type filter hook output priority 0; }\nadd rule ip track out ct state new counter\n")  # fmt: skip
    for index in range(3):
        run("ip", "netns", "exec", first, "ping", "-c", "1", "-q", "-p", f"{index:02x}", "10.99.0.2")
    run("ip", "netns", "exec", first, "ping", "-c", "1", "-q", "127.0.0.1")

    def sysctl(name: str) -> int:
        return int(run("ip", "netns", "exec", first, "cat", f"/proc/sys/net/netfilter/{name}").stdout)

    before = sysctl("nf_conntrack_count")
    ours = samples(await scrape(client))
    after = sysctl("nf_conntrack_count")
    assert before == after >= 1  # ICMP entries live 30 s: stable during the scrape
    assert ours[("node_nf_conntrack_entries", ())] == before
    assert ours[("node_nf_conntrack_entries_limit", ())] == sysctl("nf_conntrack_max")


def test_label_values_are_escaped_as_the_text_format_requires():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


# -- a real Prometheus ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # type: ignore[no-any-return]


class Prometheus:
    """``prometheus`` on 127.0.0.1 with a temporary storage directory."""

    def __init__(self, target: str, interval: float, credentials: str | None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("Prometheus is missing: apt-get install prometheus (scripts/test.sh installs it)")
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="netstate-prometheus-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        authorization = ""
        if credentials is not None:
            Path(self.directory, "token").write_text(credentials)
            authorization = f"    authorization:\n      credentials_file: {self.directory}/token\n"
        Path(self.directory, "prometheus.yml").write_text(
            "global:\n"
            f"  scrape_interval: {round(interval * 1000)}ms\n"
            f"  scrape_timeout: {round(interval * 1000)}ms\n"
            "scrape_configs:\n"
            "  - job_name: netstate\n"
            f"{authorization}"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(self.directory, "prometheus.log")

    def __enter__(self) -> Prometheus:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={self.directory}/prometheus.yml", f"--storage.tsdb.path={self.directory}/data",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    async def query(self, session: aiohttp.ClientSession, expression: str) -> list[dict[str, Any]]:
        async with session.get(f"{self.url}/api/v1/query", params={"query": expression}) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


async def test_prometheus_scrapes_the_kernels_counter_within_one_interval(netns_pair):
    """Prometheus (with a bearer token for /metrics, as its authorization
    config sends it) scrapes the service; after real traffic its
    node_network_receive_bytes_total for veth0 equals the kernel's counter
    within one scrape interval."""
    first, second = netns_pair
    quiet(first)
    quiet(second)
    interval = 1.0
    metrics_token = "metrics-" + os.urandom(12).hex()
    service = NetStateService(lambda: rtnl_source(netns=first, register_ring=service.register_ring))
    app = create_app(service, Settings(token="admin-" + os.urandom(12).hex(), metrics_token=metrics_token), StatsReader(first))
    runner = create_runner(app, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        assert await service.wait_ready(10)
        with Prometheus(f"127.0.0.1:{port}", interval, metrics_token) as prometheus:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                while True:  # Prometheus up and the first scrape in
                    try:
                        up = await prometheus.query(session, 'up{job="netstate"}')
                        if up and up[0]["value"][1] == "1":
                            break
                    except aiohttp.ClientError:
                        pass
                    assert prometheus.process is not None and prometheus.process.poll() is None, f"Prometheus exited:\n{prometheus.log_tail()}"
                    assert time.monotonic() < deadline, f"Prometheus never scraped the service successfully:\n{prometheus.log_tail()}"
                    await asyncio.sleep(0.2)
                await asyncio.to_thread(run, "ip", "netns", "exec", first, "ping", "-c", "20", "-i", "0.02", "-s", "1000", "-q", "10.99.0.2")
                kernel = proc_net_dev(first)["veth0"]["receive_bytes"]
                assert kernel > 20 * 1000
                traffic_done = time.monotonic()
                while True:
                    result = await prometheus.query(session, 'node_network_receive_bytes_total{device="veth0",job="netstate"}')
                    if result and int(float(result[0]["value"][1])) == kernel:
                        break
                    # one scrape interval, plus the scrape itself and the query's own latency
                    assert time.monotonic() - traffic_done < interval + 1.0, (
                        f"Prometheus shows {result} after {time.monotonic() - traffic_done:.2f} s; the kernel says {kernel}"
                    )
                    await asyncio.sleep(0.05)
                lag = time.monotonic() - traffic_done
                print(f"Prometheus matched the kernel's counter ({kernel} bytes) {lag:.2f} s after the traffic (scrape interval {interval} s)")
                # The admin token is not needed for /metrics, and no token is refused.
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 401
    finally:
        await runner.cleanup()


def test_the_stats_walk_and_the_message_decoder_agree_on_every_layout():
    """walk_stats (the fast path over a whole datagram) and decode_stats
    (one message) give the same counters, for the kernel's current struct,
    an older shorter one, and a pad attribute before it."""
    import random
    import struct as struct_module

    from aionlmmap.families.rtnl_stats import FIELDS, IF_STATS_MSG, RTM_NEWSTATS, LinkStats64, decode_stats, walk_stats

    seed = random.randrange(1 << 32)
    generator = random.Random(seed)
    datagram, expected = bytearray(), {}
    for ifindex in range(1, 40):
        count = generator.choice([len(FIELDS), len(FIELDS) - 1, len(FIELDS) - 2])
        values = [generator.randrange(1 << 64) for _ in range(count)]
        attribute = struct_module.pack("=HH", 4 + 8 * count, 1) + struct_module.pack(f"={count}Q", *values)
        if generator.random() < 0.3:
            attribute = struct_module.pack("=HH", 4, 0) + attribute  # IFLA_STATS_UNSPEC padding
        payload = IF_STATS_MSG.pack(0, 0, 0, ifindex, 1) + attribute
        message = struct_module.pack("=IHHII", 16 + len(payload), RTM_NEWSTATS, 2, 1, 0) + payload
        assert decode_stats(message, 16, len(message)) == (ifindex, LinkStats64(*values)), seed
        datagram += message
        expected[ifindex] = LinkStats64(*values)
    datagram += struct_module.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)  # NLMSG_DONE
    out: dict[int, LinkStats64] = {}
    walk_stats(bytes(datagram), len(datagram), out)
    assert out == expected, f"seed {seed}"
