"""nfqueue against the real kernel: iptables NFQUEUE in a throwaway namespace
pair, real UDP traffic from veth0 (10.99.0.1) to a sink on veth1 (10.99.0.2).

Each test runs on asyncio and uvloop (conftest).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

import pytest

from aionlmmap import Message, ReleasedMessageError, RingConfig
from aionlmmap.constants import NETLINK_NETFILTER
from aionlmmap.families import nfqueue

from conftest import ip, run

pytestmark = pytest.mark.integration

PORT = 7000
QUEUE = 3

# A UDP sink: receive until `count` datagrams or `idle` seconds of silence,
# print the 4-byte sequence numbers (and first payloads) it got as JSON.
SINK = r"""
import json, socket, sys
port, count, idle = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 1 << 22)  # SO_RCVBUFFORCE
s.bind(("0.0.0.0", port)); s.settimeout(idle)
print("ready", flush=True)
got, payloads = [], []
try:
    while len(got) < count:
        data = s.recv(65535)
        got.append(int.from_bytes(data[:4], "big")); payloads.append(data[4:].decode("latin-1"))
except socket.timeout:
    pass
print(json.dumps({"seqs": got, "payloads": payloads[:5]}), flush=True)
"""

SENDER = r"""
import socket, sys, time
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = sys.argv[4].encode() if len(sys.argv) > 4 else b"x" * 28
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(i.to_bytes(4, "big") + body, (dst, port))
    if i % 64 == 63:
        time.sleep(0.002)  # bounded pacing: stay under the veth queue
"""


class Sink:
    """The SINK script running in a namespace."""

    def __init__(self, netns: str, count: int, idle: float = 1.5, port: int = PORT) -> None:
        self.args = ("ip", "netns", "exec", netns, sys.executable, "-c", SINK, str(port), str(count), str(idle))
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Sink:
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 10)
        assert line.strip() == b"ready"
        return self

    async def result(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), 30)
        await self.proc.wait()
        return json.loads(out)  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def send_udp(netns: str, count: int, dst: str = "10.99.0.2", port: int = PORT, body: str | None = None) -> None:
    args = ["ip", "netns", "exec", netns, sys.executable, "-c", SENDER, dst, str(port), str(count)]
    if body is not None:
        args.append(body)
    proc = await asyncio.create_subprocess_exec(*args)
    assert await asyncio.wait_for(proc.wait(), 30) == 0


def queue_rule(netns: str, *extra: str, queue: int = QUEUE, chain: str = "INPUT") -> None:
    run("ip", "netns", "exec", netns, "iptables", "-A", chain, "-p", "udp", "--dport", str(PORT), *extra,
        "-j", "NFQUEUE", "--queue-num", str(queue))


def seq_of(packet: nfqueue.Packet) -> int:
    payload = packet.payload
    header_length = (payload[0] & 0x0F) * 4
    return int.from_bytes(payload[header_length + 8 : header_length + 12], "big")


async def test_every_packet_is_accepted_or_dropped_exactly_once(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 300
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        sending = asyncio.create_task(send_udp(sender, count))
        seen: list[int] = []
        async with asyncio.timeout(30):
            async for packet in queue:
                seq = seq_of(packet)
                seen.append(seq)
                if seq % 3 == 0:
                    packet.drop()
                else:
                    packet.accept()
                if len(seen) == count:
                    break
        await sending
        result = await sink.result()
        assert queue.stats.verdicts == count
    assert sorted(seen) == list(range(count))
    assert sorted(result["seqs"]) == [seq for seq in range(count) if seq % 3]


async def test_runs_of_equal_verdicts_leave_as_verdict_batches(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 400
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        await send_udp(sender, count)  # all queued before we read: big runs
        async with asyncio.timeout(30):
            n = 0
            async for packet in queue:
                packet.accept()
                n += 1
                if n == count:
                    break
        result = await sink.result()
        stats = queue.stats
        await queue.ring.drain()
        assert stats.batch_messages >= 1
        assert stats.batch_messages + stats.verdict_messages < count / 4
        assert queue.ring.stats.tx_syscalls < count / 4
    assert sorted(result["seqs"]) == list(range(count))


async def test_mangled_payload_arrives_mangled(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 20
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        sending = asyncio.create_task(send_udp(sender, count, body="hello-nfqueue"))
        n = 0
        async with asyncio.timeout(30):
            async for packet in queue:
                data = bytearray(packet.payload)
                header_length = (data[0] & 0x0F) * 4
                body_start = header_length + 8 + 4
                data[body_start:] = data[body_start:].upper()
                # Same length: the IP checksum stays valid; UDP checksum 0 = none (IPv4).
                data[header_length + 6 : header_length + 8] = b"\0\0"
                packet.accept(payload=data)
                n += 1
                if n == count:
                    break
        await sending
        result = await sink.result()
    assert sorted(result["seqs"]) == list(range(count))
    assert set(result["payloads"]) == {"HELLO-NFQUEUE"}


async def test_repeat_with_a_mark_reinjects_past_the_queue_rule(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver, "-m", "mark", "--mark", "0")
    run("ip", "netns", "exec", receiver, "iptables", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-m", "mark", "--mark", "7", "-j", "ACCEPT")
    count = 30
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        sending = asyncio.create_task(send_udp(sender, count))
        n = 0
        async with asyncio.timeout(30):
            async for packet in queue:
                assert packet.mark == 0
                packet.repeat(mark=7)
                n += 1
                if n == count:
                    break
        await sending
        result = await sink.result()
    assert sorted(result["seqs"]) == list(range(count))
    listing = run("ip", "netns", "exec", receiver, "iptables", "-L", "INPUT", "-v", "-x", "-n").stdout
    marked = [line for line in listing.splitlines() if "mark match 0x7" in line]
    assert int(marked[0].split()[0]) == count


async def test_packet_metadata_describes_the_packet(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    ifindex = json.loads(ip(receiver, "-j", "link", "show", "veth1").stdout)[0]["ifindex"]
    async with nfqueue.open(QUEUE, netns=receiver, uid_gid=True) as queue:
        sending = asyncio.create_task(send_udp(sender, 1))
        async with asyncio.timeout(20):
            async for packet in queue:
                assert packet.hook == "input"
                assert packet.hw_protocol == 0x0800
                assert packet.indev == ifindex
                assert packet.outdev is None
                assert bytes(packet.payload[12:16]) == socket.inet_aton("10.99.0.1")
                assert packet.payload[9] == 17  # UDP
                assert packet.uid is None  # no local socket owns an incoming packet
                assert packet.hwaddr is not None and len(packet.hwaddr) == 6
                packet.accept()
                break
        await sending


async def test_conntrack_info_is_given_or_refused_clearly(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    try:
        queue_context = nfqueue.open(QUEUE, netns=receiver, conntrack=True)
        async with queue_context as queue:
            sending = asyncio.create_task(send_udp(sender, 1))
            async with asyncio.timeout(20):
                async for packet in queue:
                    assert packet.conntrack_state == "new"
                    assert packet.conntrack is not None
                    packet.accept()
                    break
            await sending
    except OSError as exc:
        # Kernels built without CONFIG_NETFILTER_NETLINK_GLUE_CT (this CI kernel)
        assert "CONFIG_NETFILTER_NETLINK_GLUE_CT" in str(exc)
        assert queue_context.ring.closed


async def test_a_held_packet_keeps_its_payload_while_later_packets_flow(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 120  # far more packets than RX frames: the ring laps the held frame
    small_ring = RingConfig(block_size=4096, block_nr=16, frame_size=4096, frame_nr=16)
    async with nfqueue.open(QUEUE, netns=receiver, rx=small_ring) as queue, Sink(receiver, count) as sink:
        sending = asyncio.create_task(send_udp(sender, count))
        held: nfqueue.Packet | None = None
        held_bytes = b""
        n = 0
        async with asyncio.timeout(30):
            async for packet in queue:
                n += 1
                if held is None:
                    held = packet.hold()
                    held_bytes = bytes(packet.payload)
                else:
                    packet.accept()
                    await asyncio.sleep(0)  # awaits between packets: the held one stays held
                if n == count:
                    break
        assert held is not None
        assert queue.pending == 1
        assert bytes(held.payload) == held_bytes  # not overwritten by later packets
        held.accept()
        await sending
        result = await sink.result()
    assert sorted(result["seqs"]) == list(range(count))


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_full_queue_fails_open_or_drops(netns_pair: tuple[str, str], fail_open: bool) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    maxlen, count = 4, 20
    async with nfqueue.open(QUEUE, netns=receiver, maxlen=maxlen, fail_open=fail_open) as queue, Sink(receiver, count, idle=1.0) as sink:
        held: list[nfqueue.Packet] = []
        sending = asyncio.create_task(send_udp(sender, count))
        async with asyncio.timeout(20):
            async for packet in queue:
                held.append(packet)  # no verdict yet: the queue fills up
                if len(held) == maxlen:
                    break
        await sending
        await asyncio.sleep(0.3)  # packets past maxlen were decided by the kernel meanwhile
        for packet in held:
            packet.accept()
        result = await sink.result()
    seqs = sorted(result["seqs"])
    if fail_open:
        assert seqs == list(range(count))  # 16 passed while full, 4 after the verdicts
    else:
        assert seqs == list(range(maxlen))  # only the queued ones


async def test_spoofed_messages_from_another_socket_never_reach_the_queue(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    async with nfqueue.open(QUEUE, netns=receiver) as queue:
        await spoof_garbage(receiver, queue.ring.portid)
        await asyncio.sleep(0.1)
        sending = asyncio.create_task(send_udp(sender, 3))
        await nfqueue.accept_packets(queue, 3, timeout=20)
        await sending
        assert queue.ring.stats.foreign >= 1
        assert queue.stats.malformed == 0


async def test_malformed_messages_are_counted_and_skipped(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    async with nfqueue.open(QUEUE, netns=receiver, accept_foreign=True) as queue:
        await spoof_garbage(receiver, queue.ring.portid)
        sending = asyncio.create_task(send_udp(sender, 3))
        await nfqueue.accept_packets(queue, 3, timeout=20)
        await sending
        assert queue.stats.malformed == 2  # short packet message, packet message without NFQA_PACKET_HDR
        assert queue.ring.stats.decode_errors == 1  # nlmsg_len past the datagram


async def spoof_garbage(netns: str, portid: int) -> None:
    """From another netlink socket in ``netns``: messages that look like
    nfqueue packets but are broken."""
    from aionlmmap._sys import open_socket

    sock = open_socket(NETLINK_NETFILTER, netns)
    try:
        sock.bind((0, 0))
        packet_type = 3 << 8
        bad = [
            Message(packet_type, 0, payload=b"\0\0").encode(),  # shorter than nfgenmsg + header
            Message(packet_type, 0, payload=b"\0\0\0\x03" + struct.pack("=HH", 8, 10) + b"abcd").encode(),  # no PACKET_HDR
            struct.pack("=IHHII", 400, packet_type, 0, 0, 0) + b"\0" * 8,  # nlmsg_len runs past the datagram
        ]
        for datagram in bad:
            sock.sendto(datagram, (portid, 0))
    finally:
        sock.close()


async def test_a_second_consumer_on_the_same_queue_is_refused(netns: str) -> None:
    async with nfqueue.open(QUEUE, netns=netns):
        with pytest.raises(OSError, match="already bound"):
            async with nfqueue.open(QUEUE, netns=netns):
                pass


async def test_batches_give_every_packet_once_in_order_with_batched_verdicts(netns_pair: tuple[str, str]) -> None:
    # queue.batches(): the same packets as `async for packet in queue`, in
    # lists of every packet waiting; verdicts, held payloads and the
    # verdict batching behave as they do packet by packet.
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 400
    # The sink waits up to `idle` for each packet, the first included, which
    # comes only after the sender process ran: generous on a loaded machine.
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count, idle=4.0) as sink:
        await send_udp(sender, count)  # all queued before we read: full lists
        seen: list[int] = []
        sizes: list[int] = []
        held: list[tuple[nfqueue.Packet, bytes]] = []
        previous: nfqueue.Packet | None = None
        async with asyncio.timeout(30):
            async for batch in queue.batches():
                assert batch, "an empty list was yielded"
                if previous is not None:
                    with pytest.raises(ReleasedMessageError):
                        bytes(previous.payload)  # a payload not held ends with its list
                sizes.append(len(batch))
                for packet in batch:
                    seq = seq_of(packet)
                    seen.append(seq)
                    if seq % 50 == 7:
                        held.append((packet.hold(), bytes(packet.payload)))  # decided after the next step
                    elif seq % 3 == 0:
                        packet.drop()
                        previous = packet
                    else:
                        packet.accept()
                for packet, payload in held[:-1]:
                    assert bytes(packet.payload) == payload  # a held payload outlives its list
                    packet.accept()
                held[:-1] = []
                if len(seen) == count:
                    break
        for packet, _payload in held:
            packet.accept()
        result = await sink.result()
        await queue.ring.drain()
        stats = queue.stats
        assert stats.verdicts == count and queue.pending == 0
        assert stats.batch_messages >= 1  # runs of accepts at the head of the queue
    assert seen == list(range(count))  # in order, each once
    assert max(sizes) > 1 and sum(sizes) == count
    assert sorted(result["seqs"]) == [seq for seq in range(count) if seq % 3 or seq % 50 == 7]


async def test_batches_and_packets_take_turns_where_the_last_loop_stopped(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 300
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        await send_udp(sender, count)
        seen: list[int] = []
        async with asyncio.timeout(30):
            while len(seen) < count:
                async for batch in queue.batches():
                    for packet in batch:
                        seen.append(seq_of(packet))
                        packet.accept()
                    break  # leave after one list: the next loop goes on after it
                if len(seen) == count:
                    break
                async for packet in queue:
                    seen.append(seq_of(packet))
                    packet.accept()
                    if len(seen) % 7 == 0 or len(seen) == count:
                        break
        result = await sink.result()
        assert queue.stats.verdicts == count
    assert seen == list(range(count))
    assert sorted(result["seqs"]) == list(range(count))


async def test_a_packet_left_undecided_in_a_list_is_not_yielded_again(netns_pair: tuple[str, str]) -> None:
    sender, receiver = netns_pair
    queue_rule(receiver)
    count = 50
    async with nfqueue.open(QUEUE, netns=receiver) as queue, Sink(receiver, count) as sink:
        await send_udp(sender, count)
        seen: list[int] = []
        undecided: list[nfqueue.Packet] = []
        async with asyncio.timeout(30):
            while len(seen) < count:
                async for batch in queue.batches():
                    *rest, last = batch
                    for packet in rest:
                        packet.accept()
                    undecided.append(last)  # left without a verdict, and the loop left
                    seen += [packet.id for packet in batch]
                    break
            await asyncio.sleep(0)  # the iteration's verdicts are sent when it ends
            assert queue.pending == len(undecided)
            for packet in undecided:
                packet.accept()  # a verdict needs only the id: given late, it still counts
        result = await sink.result()
    assert len(seen) == len(set(seen)) == count
    assert sorted(result["seqs"]) == list(range(count))
