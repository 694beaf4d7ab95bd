"""conntrack against conntrack-tools: entries made by real TCP and UDP
traffic between two namespaces (seeded random ports and protocols, seed
printed on failure), compared entry by entry with ``conntrack -L -o xml``;
kernel-side filters, changes, statistics, the monitor and its resync."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from aionlmmap import DecodeError, Message
from aionlmmap.families import conntrack
from aionlmmap.families.conntrack import TupleSpec, codec
from aionlmmap.families.conntrack import constants as c
from tests.conftest import ip, run

pytestmark = pytest.mark.integration

A_V6, B_V6 = "fd99::1", "fd99::2"


def _enable_conntrack(ns: str, accounting: bool = False) -> None:
    # A rule that reads ct state makes the namespace track connections
    # (nf_ct_netns_get); accounting adds CTA_COUNTERS_* (nf_conntrack_acct).
    run("ip", "netns", "exec", ns, "nft", "-f", "-", input=textwrap.dedent("""
        table inet aionlmmap_ct {
            chain out { type filter hook output priority 0; ct state new counter; }
            chain in { type filter hook input priority 0; ct state new counter; }
        }
    """))
    run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.netfilter.nf_conntrack_acct={int(accounting)}")


@pytest.fixture
def tracked_pair(netns_pair: tuple[str, str]) -> Iterator[tuple[str, str]]:
    first, second = netns_pair
    ip(first, "addr", "add", f"{A_V6}/64", "dev", "veth0", "nodad")
    ip(second, "addr", "add", f"{B_V6}/64", "dev", "veth1", "nodad")
    _enable_conntrack(first, accounting=True)
    yield first, second


_SERVER = """
import socket, sys, select, time
tcp = [int(p) for p in sys.argv[1].split(",") if p]
udp = [int(p) for p in sys.argv[2].split(",") if p]
socks = []
for family, host in ((socket.AF_INET, "10.99.0.2"), (socket.AF_INET6, "fd99::2")):
    for port in tcp:
        s = socket.socket(family, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port)); s.listen(64); socks.append(s)
    for port in udp:
        s = socket.socket(family, socket.SOCK_DGRAM); s.bind((host, port)); socks.append(s)
print("ready", flush=True)
held = []
deadline = time.monotonic() + 50
while time.monotonic() < deadline:
    ready, _, _ = select.select(socks + [sys.stdin], [], [], 0.2)
    if sys.stdin in ready:
        break
    for s in ready:
        if s.type == socket.SOCK_STREAM:
            held.append(s.accept()[0])
        else:
            data, peer = s.recvfrom(100); s.sendto(data, peer)
"""

_CLIENT = """
import json, socket, sys, time
plan = json.loads(sys.argv[1])
held = []
for family, host, proto, port, close in plan:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    if proto == "tcp":
        s = socket.socket(af, socket.SOCK_STREAM); s.settimeout(5); s.connect((host, port))
        if close:
            s.close()
        else:
            held.append(s)
    else:
        s = socket.socket(af, socket.SOCK_DGRAM); s.sendto(b"ping", (host, port)); held.append(s)
time.sleep(0.3)
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def traffic(pair: tuple[str, str], seed: int, count: int) -> Iterator[list[Any]]:
    """Seeded random TCP and UDP flows from the first namespace to the
    second, over IPv4 and IPv6; some TCP flows closed, some UDP answered."""
    rng = random.Random(seed)
    ports = rng.sample(range(20000, 40000), count * 2)
    tcp_ports, udp_ports = ports[:count], ports[count:]
    answered = [port for port in udp_ports if rng.random() < 0.5]
    plan = []
    for index in range(count):
        family = rng.choice((4, 6))
        host = "10.99.0.2" if family == 4 else B_V6
        if rng.random() < 0.5:
            plan.append((family, host, "tcp", tcp_ports[index], rng.random() < 0.3))
        else:
            plan.append((family, host, "udp", udp_ports[index], False))
    first, second = pair
    server = subprocess.Popen(["ip", "netns", "exec", second, sys.executable, "-c", _SERVER, ",".join(map(str, tcp_ports)), ",".join(map(str, answered))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    client = None
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.Popen(["ip", "netns", "exec", first, sys.executable, "-c", _CLIENT, json.dumps(plan)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None and client.stdout.readline().strip() == "ready", f"seed {seed}: the client failed"
        yield plan
    finally:
        for process in (client, server):
            if process is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # type: ignore[union-attr]
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def conntrack_xml(ns: str, *args: str) -> dict[int, dict[str, Any]]:
    """``conntrack -L -o xml`` as {id: fields}, fields named like Flow.to_json()."""
    out = run("ip", "netns", "exec", ns, "conntrack", "-L", "-o", "xml,id", *args).stdout
    flows: dict[int, dict[str, Any]] = {}
    if not out.strip():
        return flows
    for flow in ET.fromstring(out).iter("flow"):
        item: dict[str, Any] = {"flags": []}
        for meta in flow.iter("meta"):
            direction = meta.get("direction")
            if direction in ("original", "reply"):
                layer3, layer4 = meta.find("layer3"), meta.find("layer4")
                side: dict[str, Any] = {"src": layer3.findtext("src"), "dst": layer3.findtext("dst")}  # type: ignore[union-attr]
                if layer4.find("sport") is not None:  # type: ignore[union-attr]
                    side["sport"] = int(layer4.findtext("sport"))  # type: ignore[union-attr,arg-type]
                    side["dport"] = int(layer4.findtext("dport"))  # type: ignore[union-attr,arg-type]
                counters = meta.find("counters")
                if counters is not None:
                    side["packets"] = int(counters.findtext("packets"))  # type: ignore[arg-type]
                    side["bytes"] = int(counters.findtext("bytes"))  # type: ignore[arg-type]
                item[direction] = side
                item["family"] = layer3.get("protoname")  # type: ignore[union-attr]
                item["protocol"] = layer4.get("protoname")  # type: ignore[union-attr]
                item["protonum"] = int(layer4.get("protonum"))  # type: ignore[union-attr,arg-type]
            else:
                state = meta.findtext("state")
                if state is not None:
                    item["state"] = state
                for key in ("timeout", "mark", "use", "id", "zone"):
                    if meta.findtext(key) is not None:
                        item[key] = int(meta.findtext(key))  # type: ignore[arg-type]
                if meta.find("unreplied") is not None:
                    item["flags"].append("UNREPLIED")
                if meta.find("assured") is not None:
                    item["flags"].append("ASSURED")
        flows[item["id"]] = item
    return flows


def assert_same_as_tool(ours: list[dict[str, Any]], tool: dict[int, dict[str, Any]], seed: int) -> None:
    assert sorted(item["id"] for item in ours) == sorted(tool), f"seed {seed}: different entries"
    for item in ours:
        expected = tool[item["id"]]
        for key, value in expected.items():
            if key == "timeout":
                assert abs(item[key] - value) <= 2, f"seed {seed}: timeout {item[key]} vs {value}"
            else:
                assert item.get(key) == value, f"seed {seed}: {key}: {item.get(key)!r} vs {value!r} in {item}"


async def dump_json(ns: str, **filters: Any) -> list[dict[str, Any]]:
    async with conntrack.open(netns=ns) as ct:
        return [flow.to_json() async for flow in ct.flows(**filters)]


@pytest.mark.parametrize("seed", [11, 2024])
async def test_dump_equals_conntrack_xml_on_generated_flows(tracked_pair: tuple[str, str], seed: int) -> None:
    with traffic(tracked_pair, seed, 40) as plan:
        ours = await dump_json(tracked_pair[0])
        tool = conntrack_xml(tracked_pair[0])
    assert len(tool) >= len(plan), f"seed {seed}: the traffic made {len(tool)} entries for {len(plan)} flows"
    assert {item["protocol"] for item in ours} == {"tcp", "udp"}
    assert {item["family"] for item in ours} == {"ipv4", "ipv6"}
    assert any("packets" in item["original"] for item in ours), "accounting is on: counters expected"
    assert_same_as_tool(ours, tool, seed)


async def test_kernel_side_filters_match_the_tool_and_a_local_filter(tracked_pair: tuple[str, str]) -> None:
    first = tracked_pair[0]
    seed = 7
    with traffic(tracked_pair, seed, 30):
        async with conntrack.open(netns=first) as ct:
            everything = [flow async for flow in ct.flows()]
            rng = random.Random(seed)
            for flow in everything:
                mark = rng.choice((0, 1, 2, 0x10001))
                if mark:
                    o = flow.original
                    await ct.update(TupleSpec(o.src, o.dst, o.protonum, sport=o.sport, dport=o.dport), mark=mark)
            everything = [flow async for flow in ct.flows()]
            by_mark = [flow.id async for flow in ct.flows(mark=1, mark_mask=0xFFFF)]
            assert sorted(by_mark) == sorted(f.id for f in everything if (f.mark or 0) & 0xFFFF == 1)
            assert sorted(by_mark) == sorted(conntrack_xml(first, "--mark", "1/0xffff"))
            v6 = [flow.id async for flow in ct.flows(6)]
            assert sorted(v6) == sorted(f.id for f in everything if f.family == c.AF_INET6)
            assert sorted(v6) == sorted(conntrack_xml(first, "-f", "ipv6"))
            udp = [flow.id async for flow in ct.flows(4, original=TupleSpec(protocol="udp"))]
            assert sorted(udp) == sorted(f.id for f in everything if f.family == c.AF_INET and f.protocol == "udp")
            assert sorted(udp) == sorted(conntrack_xml(first, "-f", "ipv4", "-p", "udp"))
            one = everything[0]
            spec = TupleSpec(one.original.src, one.original.dst, one.original.protonum, dport=one.original.dport)
            assert [flow.id async for flow in ct.flows(original=spec)] == [one.id]
            # IPv6 addresses: the kernel's own filter drops the matching
            # entries (ctnetlink_filter_match_tuple); the client must not.
            for flow in [f for f in everything if f.family == c.AF_INET6][:3]:
                spec = TupleSpec(flow.original.src, flow.original.dst, flow.original.protonum, sport=flow.original.sport)
                assert [found.id async for found in ct.flows(original=spec)] == [flow.id]
            assured = [flow.id async for flow in ct.flows(status=c.IPS_ASSURED)]
            assert sorted(assured) == sorted(f.id for f in everything if f.status & c.IPS_ASSURED)
            assert sorted(assured) == sorted(conntrack_xml(first, "--status", "ASSURED"))


async def test_zone_filter_create_update_delete_flush(tracked_pair: tuple[str, str]) -> None:
    first = tracked_pair[0]
    async with conntrack.open(netns=first) as ct:
        made = []
        for index in range(6):
            spec = TupleSpec("192.0.2.1", "198.51.100.1", "tcp" if index % 2 else "udp", sport=1000 + index, dport=80)
            await ct.create(spec, timeout=300, zone=index % 3, mark=index, **({"tcp_state": "established"} if index % 2 else {}))
            made.append(spec)
        with pytest.raises(FileExistsError):
            await ct.create(made[0], timeout=300, zone=0)
        zone2 = [flow async for flow in ct.flows(4, zone=2)]
        assert sorted(flow.original.sport for flow in zone2) == [1002, 1005]
        assert sorted(conntrack_xml(first, "-w", "2")) == sorted(flow.id for flow in zone2)
        await ct.update(made[1], zone=1, mark=0xBEEF, timeout=77)
        got = await ct.get(made[1], zone=1)
        assert (got.mark, got.state, got.zone) == (0xBEEF, "ESTABLISHED", 1)
        assert abs(got.timeout - 77) <= 1
        tool = conntrack_xml(first, "--mark", str(0xBEEF))
        assert list(tool) == [got.id] and tool[got.id]["zone"] == 1
        await ct.delete(made[1], zone=1)
        with pytest.raises(FileNotFoundError):
            await ct.get(made[1], zone=1)
        with pytest.raises(FileNotFoundError):
            await ct.delete(made[1], zone=1)
        assert (await ct.count()).entries == int(run("ip", "netns", "exec", first, "conntrack", "-C").stdout)
        await ct.flush(mark=4)
        assert sorted([flow.original.sport async for flow in ct.flows(4)]) == [1000, 1002, 1003, 1005]
        await ct.flush()
        assert (await ct.count()).entries == 0
        assert conntrack_xml(first) == {}


async def test_bad_arguments_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="family"):
        codec.dump_request(0, original=TupleSpec(protocol="udp", dport=53))
    with pytest.raises(ValueError, match="mark_mask needs a mark"):
        codec.dump_request(mark_mask=1)
    with pytest.raises(ValueError, match="protocol"):
        TupleSpec("10.0.0.1", "10.0.0.2", "nonsense")
    with pytest.raises(ValueError, match="mixes"):
        TupleSpec("10.0.0.1", "::1", "udp")
    with pytest.raises(ValueError, match="nothing to update"):
        codec.update_request(TupleSpec("10.0.0.1", "10.0.0.2", "udp", sport=1, dport=2))


async def test_stats_and_count_match_the_tool(tracked_pair: tuple[str, str]) -> None:
    first = tracked_pair[0]
    with traffic(tracked_pair, 5, 10):
        async with conntrack.open(netns=first) as ct:
            stats = await ct.stats()
            count = await ct.count()
            expectations = [e async for e in ct.expectations()]
        tool_count = int(run("ip", "netns", "exec", first, "conntrack", "-C").stdout)
        tool_stats = run("ip", "netns", "exec", first, "conntrack", "-S").stdout.splitlines()
    assert count.entries == tool_count and count.max_entries
    assert len(stats) == len(tool_stats) == os.cpu_count()
    for ours, line in zip(sorted(stats, key=lambda s: s.cpu), tool_stats):
        fields = dict(part.split("=") for part in line.split())
        assert int(fields.pop("cpu")) == ours.cpu
        for key, value in fields.items():
            assert ours.counters[key] == int(value), (key, line)
    assert expectations == []
    assert run("ip", "netns", "exec", first, "conntrack", "-L", "expect").stdout.strip() == ""


def _message(payload_attrs: bytes, family: int = c.AF_INET) -> bytes:
    return bytes([family, 0, 0, 0]) + payload_attrs


def _attr(attr_type: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, attr_type) + value + bytes((-length) % 4)


def _tuple(src: bytes, dst: bytes, proto: int, sport: int, dport: int, extra: bytes = b"") -> bytes:
    ip_nest = _attr(c.CTA_IP_V4_SRC, src) + _attr(c.CTA_IP_V4_DST, dst)
    proto_nest = _attr(c.CTA_PROTO_NUM, bytes([proto])) + _attr(c.CTA_PROTO_SRC_PORT, struct.pack(">H", sport)) + _attr(c.CTA_PROTO_DST_PORT, struct.pack(">H", dport))
    return _attr(c.CTA_TUPLE_IP | 0x8000, ip_nest) + _attr(c.CTA_TUPLE_PROTO | 0x8000, proto_nest) + extra


def test_unknown_attributes_are_counted_and_malformed_ones_raise() -> None:
    counts = codec.DecodeCounts()
    orig = _tuple(b"\x0a\0\0\x01", b"\x0a\0\0\x02", 17, 1, 2, extra=_attr(9, b"\0\0\0\0"))
    body = _attr(c.CTA_TUPLE_ORIG | 0x8000, orig) + _attr(c.CTA_STATUS, struct.pack(">I", 8)) + _attr(200, b"future") + _attr(c.CTA_MARK, struct.pack(">I", 5))
    payload = _message(body)
    flow = codec.decode_flow(payload, 0, len(payload), counts)
    assert (flow.original.src, flow.original.sport, flow.mark, flow.status) == ("10.0.0.1", 1, 5, 8)
    assert counts.unknown_attributes == 2
    truncated = _message(_attr(c.CTA_TUPLE_ORIG | 0x8000, orig) + _attr(c.CTA_MARK, b"\0\0"))
    with pytest.raises(DecodeError, match="CTA_MARK"):
        codec.decode_flow(truncated, 0, len(truncated), counts)
    overlong = payload[:-2]
    with pytest.raises(DecodeError, match="runs past"):
        codec.decode_flow(overlong, 0, len(overlong), counts)


def test_the_client_counts_malformed_messages_and_goes_on() -> None:
    client = conntrack.ConntrackClient.__new__(conntrack.ConntrackClient)
    client.counts = codec.DecodeCounts()
    bad = Message(c.NFNL_SUBSYS_CTNETLINK << 8, 0, payload=_message(_attr(c.CTA_STATUS, b"\0")))
    assert client._flow(bad) is None
    good_body = _attr(c.CTA_TUPLE_ORIG | 0x8000, _tuple(b"\x0a\0\0\x01", b"\x0a\0\0\x02", 6, 3, 4))
    assert client._flow(Message(c.NFNL_SUBSYS_CTNETLINK << 8, 0, payload=_message(good_body))).original.dport == 4
    assert client.counts.malformed == 1


def test_cli_dump_conntrack_json_equals_the_tool(tracked_pair: tuple[str, str]) -> None:
    first = tracked_pair[0]
    with traffic(tracked_pair, 99, 12):
        out = run(sys.executable, "-m", "aionlmmap", "dump", "conntrack", "--json", "--netns", first).stdout
        tool = conntrack_xml(first)
        text = run(sys.executable, "-m", "aionlmmap", "dump", "conntrack", "--netns", first, "-6").stdout
    ours = json.loads(out)
    assert_same_as_tool(ours, tool, 99)
    assert len(text.splitlines()) == sum(1 for item in tool.values() if item["family"] == "ipv6")
    assert all(line.startswith("ipv6 ") for line in text.splitlines())


async def test_cli_monitor_conntrack_prints_events(netns: str) -> None:
    _enable_conntrack(netns)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "aionlmmap", "monitor", "--kinds", "conntrack", "--json", "--netns", netns, stdout=subprocess.PIPE)
    try:
        await asyncio.sleep(1.0)  # the command starts and joins its groups
        async with conntrack.open(netns=netns) as ct:
            await ct.create(TupleSpec("192.0.2.9", "198.51.100.9", "udp", sport=4000, dport=53), timeout=60)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        event = json.loads(line)
        assert (event["action"], event["kind"], event["object"]["original"]["sport"]) == ("new", "conntrack", 4000)
    finally:
        process.terminate()
        await process.wait()
