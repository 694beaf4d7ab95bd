"""nflog against the real kernel: iptables NFLOG and nft ``log group`` rules in
a throwaway namespace pair, real UDP traffic (asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from aionlmmap.families import nflog, nftables
from aionlmmap.families.nftables import ACCEPT, Log, udp_dport

from conftest import ip, run
from test_nfqueue import PORT, send_udp, spoof_garbage

pytestmark = pytest.mark.integration
GROUP = 7


def nflog_rule(netns: str, *extra: str) -> None:
    run("ip", "netns", "exec", netns, "iptables", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-j", "NFLOG",
        "--nflog-group", str(GROUP), *extra)


async def collect(log: nflog.Log, count: int) -> list[dict]:
    out = []
    async with asyncio.timeout(20):
        async for entry in log:
            payload = bytes(entry.payload)
            out.append({**entry.to_dict(), "src": socket.inet_ntoa(payload[12:16]), "seq": int.from_bytes(payload[28:32], "big")})
            if len(out) == count:
                break
    return out


async def test_entries_carry_prefix_hook_interface_and_payload(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    nflog_rule(receiver, "--nflog-prefix", "aionl-in")
    ifindex = json.loads(ip(receiver, "-j", "link", "show", "veth1").stdout)[0]["ifindex"]
    async with nflog.open(GROUP, netns=receiver) as log:
        await send_udp(sender, 5)
        entries = await collect(log, 5)
        assert log.stats.entries == 5 and log.stats.malformed == 0
    assert [entry["seq"] for entry in entries] == [0, 1, 2, 3, 4]
    for entry in entries:
        assert entry["prefix"] == "aionl-in"
        assert entry["hook"] == "input"
        assert entry["indev"] == ifindex and entry["outdev"] is None
        assert entry["src"] == "10.99.0.1"
        assert entry["hw_protocol"] == 0x0800
        assert entry["payload_length"] == 20 + 8 + 4 + 28


async def test_copy_range_limits_the_payload(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    nflog_rule(receiver)
    async with nflog.open(GROUP, netns=receiver, copy_range=24) as log:
        await send_udp(sender, 2)
        async with asyncio.timeout(20):
            async for entry in log:
                assert len(entry.payload) == 24
                break


async def test_batched_entries_arrive_one_by_one(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    nflog_rule(receiver)
    # qthreshold 5: the kernel packs five entries per datagram (NLM_F_MULTI + NLMSG_DONE).
    async with nflog.open(GROUP, netns=receiver, qthreshold=5, flush_timeout=0.1, flags=nflog.NFULNL_CFG_F_SEQ) as log:
        await send_udp(sender, 20)
        entries = []
        async with asyncio.timeout(20):
            async for entry in log:
                entries.append(entry.seq)
                if len(entries) == 20:
                    break
        assert log.ring.stats.frames < 20  # several entries per datagram
    assert entries == list(range(20))


async def test_nft_log_rules_feed_an_nflog_group(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    async with nftables.open(netns=receiver) as nft, nflog.open(GROUP, netns=receiver) as log:
        async with nft.transaction() as tx:
            tx.add_table("inet", "watch")
            tx.add_chain("inet", "watch", "input", hook="input", priority=0, policy="accept")
            tx.add_rule("inet", "watch", "input", [*udp_dport(PORT), Log(prefix="nft-watch", group=GROUP), ACCEPT])
        await send_udp(sender, 3)
        entries = await collect(log, 3)
    assert {entry["prefix"] for entry in entries} == {"nft-watch"}
    assert [entry["seq"] for entry in entries] == [0, 1, 2]


async def test_a_second_listener_on_the_same_group_is_refused(netns: str) -> None:
    async with nflog.open(GROUP, netns=netns):
        with pytest.raises(OSError, match="already bound"):
            async with nflog.open(GROUP, netns=netns):
                pass


async def test_malformed_messages_are_counted_and_skipped(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    nflog_rule(receiver)
    async with nflog.open(GROUP, netns=receiver, accept_foreign=True) as log:
        # Queue-shaped garbage: wrong message type for nflog, or broken.
        await spoof_garbage(receiver, log.ring.portid)
        from aionlmmap import Message

        sock_type = 4 << 8  # NFULNL_MSG_PACKET without NFULA_PACKET_HDR
        from aionlmmap._sys import open_socket
        from aionlmmap.constants import NETLINK_NETFILTER

        sock = open_socket(NETLINK_NETFILTER, receiver)
        try:
            sock.bind((0, 0))
            sock.sendto(Message(sock_type, 0, payload=b"\0\0\0\x07" + b"\x08\x00\x0a\x00abc\0").encode(), (log.ring.portid, 0))
        finally:
            sock.close()
        await send_udp(sender, 2)
        entries = await collect(log, 2)
        assert len(entries) == 2
        assert log.stats.malformed == 1
        assert log.stats.other_messages == 2  # the two queue-typed messages
