"""The decoder fuzzing harness shared by tests/test_fuzz_decoders.py (a
fixed budget) and benchmarks/stress.py (the long run).

- Seeds: real messages. rtnetlink and nf_tables messages are captured from
  the kernel in a throwaway namespace (:func:`capture_seeds`); nfqueue and
  nflog packets, which need live traffic, are built the way the kernel lays
  them out (``nfqnl_build_packet_message``, ``__build_packet_message``);
  nf_tables messages are also built with the library's encoders.
- Mutations work on the attribute tree (a value that parses exactly as
  attributes is a nest): empty a value, cut it short, replace it, drop or
  repeat an attribute, all with the enclosing lengths kept right, so the
  damage reaches deep values (a 1-byte NFTA_VERDICT_CODE, a zero-length
  IFLA_OPERSTATE at the end); then raw byte damage (flips, u16 length
  fields set to edge values, truncation, insertion, deletion) on top.
- The oracle: a decoder returns, or raises DecodeError (the documented
  subclasses included); anything else escaping is a crash. No call may take
  more than 100 ms of CPU.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from aionlmmap import AttributeBuilder, Message, iter_messages
from aionlmmap.attributes import Attributes, iter_attributes, parse_attributes
from aionlmmap.errors import DecodeError
from aionlmmap.families import nflog, nfqueue, nftables_codec as nft
from aionlmmap.families.nftables_expr import (
    ACCEPT,
    DROP,
    Bitwise,
    Counter,
    Ct,
    Log,
    Meta,
    Queue,
    RawExpression,
    ip_saddr_in,
    jump,
    tcp_dport,
)
from aionlmmap.families.conntrack import codec as conntrack_codec
from aionlmmap.families.genl.client import declared
from aionlmmap.families.genl.ethtool import bitset_values
from aionlmmap.families.genl.spec import DecodeCounts as GenlCounts
from aionlmmap.families.rtnl_codec import decode_address, decode_link, decode_neighbour, decode_route, decode_rule
from aionlmmap.families.sock_diag import codec as sock_diag_codec
from aionlmmap.message import ReceivedFrame, header_run, parse_frame
from aionlmmap.protocol import parse_error

NLM_F_REQUEST_DUMP = 0x1 | 0x300
NLM_F_REQUEST_ACK = 0x1 | 0x4

#: CPU time one decoder call may take at most
TIME_LIMIT = 0.1
_NLA = struct.Struct("=HH")
_NLMSG = struct.Struct("=IHHII")


# -- the attribute tree --------------------------------------------------------------
def parse_tree(data: bytes, depth: int = 0) -> list[Any] | None:
    """``[(type, value)]`` where value is bytes or a subtree, if ``data`` is
    exactly a run of attributes that encodes back to itself; else None."""
    if len(data) < 4 or depth > 6:
        return None
    nodes: list[Any] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            return None
        length, kind = _NLA.unpack_from(data, offset)
        end = offset + length
        if length < 4 or end > len(data):
            return None
        value = data[offset + 4 : end]
        sub = parse_tree(value, depth + 1) if kind & 0x8000 or len(value) >= 4 else None
        nodes.append([kind, sub if sub is not None else value])
        offset = (end + 3) & ~3
    if encode_tree(nodes) != data:
        return None
    return nodes


def encode_tree(nodes: list[Any]) -> bytes:
    out = bytearray()
    for kind, value in nodes:
        raw = encode_tree(value) if isinstance(value, list) else value
        out += _NLA.pack(4 + len(raw), kind) + raw
        out += bytes(-len(out) % 4)
    return bytes(out)


def tree_nodes(nodes: list[Any]) -> list[tuple[list[Any], int]]:
    """Every (siblings, index) in the tree, depth first."""
    found: list[tuple[list[Any], int]] = []
    for index, (_kind, value) in enumerate(nodes):
        found.append((nodes, index))
        if isinstance(value, list):
            found += tree_nodes(value)
    return found


class Seed:
    """One real message: ``header`` bytes (the family header) and its
    attributes as a tree, for decoder ``name``."""

    def __init__(self, name: str, message_type: int, payload: bytes, header_size: int) -> None:
        self.name = name
        self.message_type = message_type
        self.header = payload[:header_size]
        self.tree = parse_tree(payload[header_size:]) if len(payload) > header_size else None
        self.tail = payload[header_size:] if self.tree is None else b""

    def payload(self) -> bytes:
        return self.header + (encode_tree(self.tree) if self.tree is not None else self.tail)


def mutate(seed: Seed, tree_edits: list[tuple[int, int, int, bytes]], byte_edits: list[tuple[int, int, int]]) -> bytes:
    """The seed's payload after ``tree_edits`` (node pick, operation, size,
    bytes) and ``byte_edits`` (operation, position, value)."""
    import copy

    tree = copy.deepcopy(seed.tree)
    if tree is not None:
        for pick, operation, size, blob in tree_edits:
            # Half the picks among the top-level attributes, where a
            # decoder reads most fields, half anywhere in the tree.
            nodes = tree_nodes(tree) if pick & 1 else [(tree, index) for index in range(len(tree))]
            if not nodes:
                break
            siblings, index = nodes[(pick >> 1) % len(nodes)]
            kind, value = siblings[index]
            raw = encode_tree(value) if isinstance(value, list) else value
            if operation == 0:  # empty value (the zero-length IFLA_OPERSTATE)
                siblings[index] = [kind, b""]
            elif operation == 1:  # cut short (the short NFTA_VERDICT_CODE)
                siblings[index] = [kind, raw[: size % (len(raw) + 1)]]
            elif operation == 2:  # replaced by other bytes
                siblings[index] = [kind, blob]
            elif operation == 3:  # dropped
                del siblings[index]
            elif operation == 4:  # repeated
                siblings.insert(index, [kind, value])
            elif operation == 5:  # moved to the end (a damaged attribute last in the message)
                siblings.append(siblings.pop(index))
            elif operation == 6:  # another type
                siblings[index] = [(kind & 0xC000) | (size & 0x3FFF), value]
            elif operation == 7:  # the nested flag flipped
                siblings[index] = [kind ^ 0x8000, value]
            else:  # cut short and moved last: a read past its end reads past the message
                siblings.pop(index)
                siblings.append([kind, raw[: size % max(1, len(raw))]])
    data = bytearray(seed.header + (encode_tree(tree) if tree is not None else seed.tail))
    for operation, position, value in byte_edits:
        if not data:
            data += bytes([value & 0xFF])
            continue
        where = position % len(data)
        if operation == 0:
            data[where] ^= 1 << (value % 8)
        elif operation == 1:
            data[where] = value & 0xFF
        elif operation == 2:
            del data[where:]
        elif operation == 3:
            aligned = where & ~3
            if aligned + 2 <= len(data):
                edge = (0, 1, 3, 4, 5, 7, 8, 0x7FFF, 0xFFFF, len(data) - aligned, len(data) - aligned + 4)[value % 11]
                struct.pack_into("=H", data, aligned, edge & 0xFFFF)
        elif operation == 4:
            data[where:where] = bytes([value & 0xFF]) * (1 + value % 5)
        else:
            del data[where : where + 1 + value % 16]
    return bytes(data)


# -- the decoders -------------------------------------------------------------------------
def _message(message_type: int, payload: bytes) -> Message:
    """The message as the ring hands it over: parsed from a datagram."""
    (parsed,) = iter_messages(_NLMSG.pack(16 + len(payload), message_type, 0, 1, 0) + payload)
    return parsed


def _touch(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if callable(value):
            value()


_PACKET_FIELDS = ("hook", "payload", "mark", "indev", "outdev", "physindev", "physoutdev", "uid", "gid", "timestamp", "hwaddr", "conntrack_state")


def _nfqueue_packet(message_type: int, payload: bytes) -> Any:
    message = _message(message_type, payload)
    packet_id, hw_protocol, hook = nfqueue.decode_packet_header(message.payload)
    packet = nfqueue.Packet(SimpleNamespace(stats=nfqueue.QueueStats()), message, packet_id, hw_protocol, hook)  # type: ignore[arg-type]
    _touch(packet, (*_PACKET_FIELDS, "priority", "cap_len", "skb_info", "conntrack"))
    if packet.conntrack is not None:
        dict(packet.conntrack.items())
    return packet


def _nflog_entry(message_type: int, payload: bytes) -> Any:
    entry = nflog.decode_entry(_message(message_type, payload))
    _touch(entry, (*_PACKET_FIELDS, "prefix", "seq", "seq_global", "to_dict"))
    return entry


def _rtnl(decoder: Callable[..., Any], names: bool = True) -> Callable[[int, bytes], Any]:
    def decode(_message_type: int, payload: bytes) -> Any:
        if names:
            return decoder(payload, 0, len(payload), {1: "lo", 2: "eth0"})
        return decoder(payload, 0, len(payload))

    return decode


def _nft(decoder: Callable[[Message], Any]) -> Callable[[int, bytes], Any]:
    return lambda message_type, payload: decoder(_message(message_type, payload))


def _elements(message_type: int, payload: bytes) -> Any:
    message = _message(message_type, payload)
    records = nft.decode_element_records(message)
    for key_type in ("ipv4_addr", "ipv6_addr", "inet_service", "ether_addr", "mark"):
        for interval in (False, True):
            try:
                nft.elements_from_records(records, key_type, interval)
            except DecodeError:
                pass
    return records


def _walkers(message_type: int, payload: bytes) -> Any:
    """The core walkers over the same bytes: messages of a datagram, runs of
    headers, attributes and their typed getters, error reports."""
    datagram = _NLMSG.pack(16 + len(payload), message_type, 0, 1, 0) + payload
    frame = ReceivedFrame(datagram, 0, 0, 0, 0, -1)
    messages, _error = parse_frame(frame, len(datagram))
    offset = 0
    for _ in range(64):
        run, header = header_run(datagram, offset, len(datagram))
        if header is None or run <= 0:
            break
        offset += run * ((header[0] + 3) & ~3)
    for start in (0, 4, 12, 16):
        try:
            attributes = Attributes(payload, start)
            for kind in list(attributes)[:16]:
                for getter in (attributes.get_u8, attributes.get_u16, attributes.get_u32, attributes.get_u64, attributes.get_s32,
                               attributes.get_be16, attributes.get_be32, attributes.get_str, attributes.get_ip, attributes.get_nested):  # fmt: skip
                    try:
                        getter(kind)
                    except DecodeError:
                        pass
        except DecodeError:
            pass
    for error_type in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
        try:
            parse_error(_message(error_type, payload))
        except DecodeError:
            pass
    return messages


def _conntrack(decoder: Callable[..., Any]) -> Callable[[int, bytes], Any]:
    def decode(_message_type: int, payload: bytes) -> Any:
        value = decoder(payload, 0, len(payload), conntrack_codec.DecodeCounts())
        to_json = getattr(value, "to_json", None)
        return to_json() if to_json is not None else value

    return decode


def _flow(message_type: int, payload: bytes) -> Any:
    flow = _conntrack(conntrack_codec.decode_flow)(message_type, payload)
    return flow


def _inet_socket(_message_type: int, payload: bytes) -> Any:
    """One inet_diag_msg, as the slow path (extensions) and the chunk walk
    (the fast path of a dump without extensions) read it, as TCP and UDP."""
    counts = sock_diag_codec.DecodeCounts()
    datagram = _NLMSG.pack(16 + len(payload), 20, 0, 1, 0) + payload
    out = []
    for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        for extensions in (True, False):
            try:
                out.append(sock_diag_codec.decode_inet(payload, 0, len(payload), protocol, counts, extensions, sock_diag_codec.AddressText()).to_json())
            except DecodeError:
                pass
        try:
            out.extend(sock.to_json() for sock in sock_diag_codec.decode_inet_chunk(datagram, len(datagram), protocol, counts, sock_diag_codec.AddressText()))
        except DecodeError:
            pass
    return out


def _unix_socket(_message_type: int, payload: bytes) -> Any:
    value = sock_diag_codec.decode_unix(payload, 0, len(payload), sock_diag_codec.DecodeCounts())
    to_json = getattr(value, "to_json", None)
    return to_json() if to_json is not None else value


_BITSETS = ("ours", "peer", "hw", "wanted", "active", "nochange")


def _genl(family_name: str) -> Callable[[int, bytes], Any]:
    """A generic netlink reply decoded by its declaration (as
    GenlClient._decode does), then ethtool's bitsets turned into flags."""
    family = declared(family_name)
    assert family is not None, family_name

    def decode(_message_type: int, payload: bytes) -> Any:
        if len(payload) < 4:
            raise DecodeError("shorter than the genl header")
        op = family.reply_operation(payload[0])
        if op is None:
            return None
        values = family.decode(op.attribute_set, payload, 4, len(payload), GenlCounts())
        for name in _BITSETS:
            if isinstance(values.get(name), dict):
                bitset_values(values[name])
        return values

    return decode


#: decoder name -> (decode(message_type, payload), family header size)
DECODERS: dict[str, tuple[Callable[[int, bytes], Any], int]] = {
    "rtnl.link": (_rtnl(decode_link, names=False), 16),
    "rtnl.address": (_rtnl(decode_address), 8),
    "rtnl.route": (_rtnl(decode_route), 12),
    "rtnl.neighbour": (_rtnl(decode_neighbour), 12),
    "rtnl.rule": (_rtnl(decode_rule, names=False), 12),
    "nftables.table": (_nft(nft.decode_table), 4),
    "nftables.chain": (_nft(nft.decode_chain), 4),
    "nftables.set": (_nft(nft.decode_set), 4),
    "nftables.rule": (_nft(nft.decode_rule), 4),
    "nftables.elements": (_elements, 4),
    "nftables.genid": (_nft(nft.decode_genid), 4),
    "nfqueue.packet": (_nfqueue_packet, 4),
    "nflog.entry": (_nflog_entry, 4),
    "core.walkers": (_walkers, 0),
    "conntrack.flow": (_flow, 4),
    "conntrack.expectation": (_conntrack(conntrack_codec.decode_expectation), 4),
    "conntrack.cpu_stats": (_conntrack(conntrack_codec.decode_cpu_stats), 4),
    "conntrack.table_count": (_conntrack(conntrack_codec.decode_table_count), 4),
    "sock_diag.inet": (_inet_socket, 72),
    "sock_diag.unix": (_unix_socket, 16),
    "genl.nlctrl": (_genl("nlctrl"), 4),
    "genl.ethtool": (_genl("ethtool"), 4),
}


def check(name: str, message_type: int, payload: bytes) -> None:
    """The oracle: DecodeError or a value, within the time limit."""
    decode = DECODERS[name][0]
    spent = 0.0
    for _attempt in range(2):
        # The decoder's own CPU time: no garbage collection of what other
        # code left (a pause of 100 ms and more on a busy machine); a slow
        # call is timed again, since only a decoder slow every time is.
        gc.disable()
        started = time.thread_time()
        try:
            decode(message_type, payload)
        except DecodeError:
            pass
        finally:
            spent = time.thread_time() - started
            gc.enable()
        if spent <= TIME_LIMIT:
            return
    raise AssertionError(f"{name} took {spent * 1000:.0f} ms on {payload.hex()}")


# -- seeds --------------------------------------------------------------------------------
def built_seeds() -> list[Seed]:
    """Seeds made with the library (nf_tables) or laid out as the kernel
    does (nfqueue, nflog: nfgenmsg, then the packet's attributes)."""
    seeds: list[Seed] = []

    def add_nft(name: str, msg: Message) -> None:
        seeds.append(Seed(name, msg.type, bytes(msg.payload), 4))

    add_nft("nftables.table", nft.encode_table(nft.Table("inet", "fw")))
    add_nft("nftables.chain", nft.encode_chain(nft.Chain("inet", "fw", "in", hook="input", priority=-10, policy="drop")))
    add_nft("nftables.set", nft.encode_set(nft.Set("inet", "fw", "bl", key_type="ipv4_addr", flags={"timeout", "interval"}, timeout=90), 7))
    expressions = (
        *ip_saddr_in("bl", invert=True), *tcp_dport(22), Meta("mark"), Bitwise(b"\xff\0\0\0", b"\0\0\0\0"), Ct("state"), Counter(),
        Log(prefix="x", group=2, snaplen=64, qthreshold=4, level=4), Queue(num=3, total=2, bypass=True), jump("other"),
        RawExpression("fancy", b"\x08\x00\x01\x00\x00\x00\x00\x01"), ACCEPT, DROP,
    )
    add_nft("nftables.rule", nft.encode_rule(nft.Rule("inet", "fw", "in", expressions, comment="ssh")))
    intervals = nft.Set("inet", "fw", "s", key_type="ipv4_addr", flags={"interval", "timeout"})
    add_nft("nftables.elements", nft.encode_elements(intervals, [nft.Element("10.0.0.1", timeout=5), nft.Element("10.0.1.0", key_end="10.0.1.255")]))
    ports = nft.Set("inet", "fw", "p", key_type="inet_service", flags={"timeout"})
    add_nft("nftables.elements", nft.encode_elements(ports, [nft.Element(22, timeout=5), nft.Element(80)]))
    genid = nft._message(nft.NFT_MSG_NEWGEN, 0, AttributeBuilder().add(nft.NFTA_GEN_ID, struct.pack("!I", 42)))
    add_nft("nftables.genid", genid)
    nfgen = struct.pack("=BBH", socket.AF_INET, 0, struct.unpack("=H", struct.pack("!H", 3))[0])
    packet = bytes.fromhex("45000054") + bytes(16) + b"\x08\x00" + bytes(58)
    queue = (
        AttributeBuilder()
        .add(nfqueue.NFQA_PACKET_HDR, struct.pack("!IHB", 7, 0x0800, 1) + b"\0")
        .add(nfqueue.NFQA_MARK, struct.pack("!I", 5))
        .add(nfqueue.NFQA_TIMESTAMP, struct.pack("!QQ", 1700000000, 5))
        .add(nfqueue.NFQA_IFINDEX_INDEV, struct.pack("!I", 2))
        .add(nfqueue.NFQA_HWADDR, struct.pack("!H2x", 6) + b"\x02\0\0\0\0\x01\0\0")
        .add(nfqueue.NFQA_CT, AttributeBuilder().add(1, AttributeBuilder().add(1, b"\x0a\0\0\x01").build()).build())
        .add(nfqueue.NFQA_CT_INFO, struct.pack("!I", 2))
        .add(nfqueue.NFQA_CAP_LEN, struct.pack("!I", 84))
        .add(nfqueue.NFQA_SKB_INFO, struct.pack("!I", 1))
        .add(nfqueue.NFQA_UID, struct.pack("!I", 0))
        .add(nfqueue.NFQA_GID, struct.pack("!I", 0))
        .add(nfqueue.NFQA_PRIORITY, struct.pack("!I", 0))
        .add(nfqueue.NFQA_PAYLOAD, packet)
        .build()
    )
    seeds.append(Seed("nfqueue.packet", 3 << 8, nfgen + queue, 4))
    log = (
        AttributeBuilder()
        .add(nflog.NFULA_PACKET_HDR, struct.pack("!HB", 0x0800, 1) + b"\0")
        .add(nflog.NFULA_MARK, struct.pack("!I", 5))
        .add(nflog.NFULA_TIMESTAMP, struct.pack("!QQ", 1700000000, 5))
        .add(nflog.NFULA_IFINDEX_INDEV, struct.pack("!I", 2))
        .add(nflog.NFULA_HWADDR, struct.pack("!H2x", 6) + b"\x02\0\0\0\0\x01\0\0")
        .add(nflog.NFULA_PREFIX, b"drop: \0")
        .add(nflog.NFULA_SEQ, struct.pack("!I", 9))
        .add(nflog.NFULA_SEQ_GLOBAL, struct.pack("!I", 10))
        .add(nflog.NFULA_PAYLOAD, packet)
        .build()
    )
    seeds.append(Seed("nflog.entry", 4 << 8, nfgen + log, 4))
    # the core walkers start from every seed's bytes, and from a datagram of several messages
    for seed in list(seeds):
        seeds.append(Seed("core.walkers", seed.message_type, seed.payload(), 0))
    return seeds


async def _capture(netns: str) -> list[Seed]:
    import aionlmmap
    from aionlmmap.constants import NLM_F_DUMP, NLM_F_REQUEST
    from aionlmmap.families.rtnl_codec import address_dump_request, link_dump_request, neighbour_dump_request, route_dump_request, rule_dump_request

    seeds: list[Seed] = []
    rtnl = [("rtnl.link", 18, link_dump_request(), 16), ("rtnl.address", 22, address_dump_request(), 8),
            ("rtnl.route", 26, route_dump_request(), 12), ("rtnl.neighbour", 30, neighbour_dump_request(), 12),
            ("rtnl.rule", 34, rule_dump_request(), 12)]  # fmt: skip
    async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, netns=netns) as ring:
        for name, request_type, payload, header in rtnl:
            for msg in await ring.dump_all(Message(request_type, NLM_F_REQUEST | NLM_F_DUMP, payload=payload)):
                seeds.append(Seed(name, msg.type, bytes(msg.payload), header))
    async with aionlmmap.open(aionlmmap.NETLINK_NETFILTER, netns=netns) as ring:
        dumps = [("nftables.table", nft.encode_dump("tables")), ("nftables.chain", nft.encode_dump("chains")),
                 ("nftables.set", nft.encode_dump("sets")), ("nftables.rule", nft.encode_dump("rules")),
                 ("nftables.elements", nft.encode_dump("elements", "inet", table="fz", name="bl"))]  # fmt: skip
        for name, request in dumps:
            for msg in await ring.dump_all(request):
                seeds.append(Seed(name, msg.type, bytes(msg.payload), 4))
    seeds += await _capture_conntrack(netns)
    seeds += await _capture_sockets(netns)
    seeds += await _capture_genl(netns)
    return seeds


async def _capture_conntrack(netns: str) -> list[Seed]:
    """Entries made through ctnetlink (TCP, UDP over IPv6, ICMP), the
    per-CPU statistics and the table count; an expectation laid out as
    ctnetlink_exp_dump_expect does, from a real entry's tuples (making a
    real one needs a helper and its traffic)."""
    from aionlmmap.families import conntrack
    from aionlmmap.families.conntrack import TupleSpec

    seeds: list[Seed] = []
    specs = [
        (TupleSpec("192.0.2.1", "198.51.100.1", "tcp", sport=40000, dport=80), {"tcp_state": "ESTABLISHED", "mark": 7}),
        (TupleSpec("2001:db8::1", "2001:db8::2", "udp", sport=5353, dport=53), {"zone": 3}),
        (TupleSpec("192.0.2.9", "198.51.100.9", "icmp", icmp_type=8, icmp_code=0, icmp_id=77), {}),
    ]
    async with conntrack.open(netns=netns) as ct:
        for spec, options in specs:
            try:
                await ct.create(spec, timeout=600, **options)
            except FileExistsError:
                pass
        ring = ct.ring
        for name, request in (("conntrack.flow", conntrack_codec.dump_request()), ("conntrack.cpu_stats", conntrack_codec.stats_cpu_request())):
            for msg in await ring.dump_all(request):
                seeds.append(Seed(name, msg.type, bytes(msg.payload), 4))
        for msg in await ring.request(conntrack_codec.count_request()):
            seeds.append(Seed("conntrack.table_count", msg.type, bytes(msg.payload), 4))
    flow = next(seed for seed in seeds if seed.name == "conntrack.flow").payload()
    tuples = {number & 0x3FFF: bytes(flow[start:end]) for number, start, end in iter_attributes(flow, 4, len(flow))}
    expectation = (
        AttributeBuilder()
        .add(1 | 0x8000, tuples[1])  # CTA_EXPECT_MASTER (nested)
        .add(2 | 0x8000, tuples[2])  # CTA_EXPECT_TUPLE
        .add(3 | 0x8000, tuples[1])  # CTA_EXPECT_MASK
        .add(4, struct.pack("!I", 30))  # CTA_EXPECT_TIMEOUT
        .add(5, struct.pack("!I", 0xDEADBEEF))  # CTA_EXPECT_ID
        .add(8, struct.pack("!I", 1))  # CTA_EXPECT_FLAGS
        .add(9, struct.pack("!I", 0))  # CTA_EXPECT_CLASS
        .add(6, b"ftp\0")  # CTA_EXPECT_HELP_NAME
        .build()
    )
    seeds.append(Seed("conntrack.expectation", 0x200, flow[:4] + expectation, 4))
    return seeds


_SOCKET_HOLDER = """
import socket, sys, os
held = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    server = socket.socket(family, socket.SOCK_STREAM); server.bind((host, 0)); server.listen(8)
    client = socket.create_connection(server.getsockname()[:2]); peer, _ = server.accept()
    client.sendall(b"x" * 3000)  # unread: a receive queue for the dump to show
    udp = socket.socket(family, socket.SOCK_DGRAM); udp.bind((host, 0)); udp.connect((host, 9))
    held += [server, client, peer, udp]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); listener.bind(sys.argv[1]); listener.listen(1)
abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); abstract.bind("\\0aionlmmap-fuzz")
pair = socket.socketpair()
pair[0].sendall(b"y" * 100)
held += [listener, abstract, *pair]
print("ready", flush=True)
sys.stdin.read()
"""


async def _capture_sockets(netns: str) -> list[Seed]:
    """inet_diag (TCP and UDP, IPv4 and IPv6, with every extension) and
    unix_diag messages of sockets a process holds in the namespace."""
    import os
    import tempfile

    import aionlmmap
    from aionlmmap.families.sock_diag import constants as diag

    seeds: list[Seed] = []
    with tempfile.TemporaryDirectory() as directory:
        holder = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, sys.executable, "-c", _SOCKET_HOLDER, os.path.join(directory, "sock"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert holder.stdout is not None
            line = await asyncio.wait_for(holder.stdout.readline(), 30)
            assert line.strip() == b"ready", line
            everything = sum(diag.EXTENSIONS.values())
            async with aionlmmap.open(aionlmmap.NETLINK_SOCK_DIAG, netns=netns) as ring:
                for family in (socket.AF_INET, socket.AF_INET6):
                    for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
                        for msg in await ring.dump_all(sock_diag_codec.inet_request(family, protocol, extensions=everything)):
                            seeds.append(Seed("sock_diag.inet", msg.type, bytes(msg.payload), 72))
                for msg in await ring.dump_all(sock_diag_codec.unix_request(show=0xFF)):
                    seeds.append(Seed("sock_diag.unix", msg.type, bytes(msg.payload), 16))
        finally:
            if holder.returncode is None:
                holder.kill()
            await holder.wait()
    return seeds


async def _capture_genl(netns: str) -> list[Seed]:
    """nlctrl's family dump and ethtool's policy dump; ethtool's replies
    for a veth made in the namespace (parts a veth lacks answer EOPNOTSUPP)."""
    from aionlmmap.errors import NetlinkError
    from aionlmmap.families import genl

    process = await asyncio.create_subprocess_exec("ip", "-n", netns, "link", "add", "fz0", "type", "veth", "peer", "name", "fz1")
    await process.wait()
    seeds: list[Seed] = []
    async with genl.open(netns=netns) as client:
        ring = client.ring
        nlctrl = declared("nlctrl")
        assert nlctrl is not None
        dump = Message(0x10, NLM_F_REQUEST_DUMP, payload=struct.pack("=BBH", 3, 2, 0))  # CTRL_CMD_GETFAMILY
        for msg in await ring.dump_all(dump):
            seeds.append(Seed("genl.nlctrl", msg.type, bytes(msg.payload), 4))
        ethtool_id = (await client.resolve("ethtool")).id
        policy = Message(0x10, NLM_F_REQUEST_DUMP, payload=struct.pack("=BBH", 10, 2, 0) + AttributeBuilder().add(1, struct.pack("=H", ethtool_id)).build())
        for msg in await ring.dump_all(policy):
            seeds.append(Seed("genl.nlctrl", msg.type, bytes(msg.payload), 4))
        for op in ("linkinfo-get", "linkmodes-get", "linkstate-get", "features-get", "rings-get", "channels-get", "stats-get"):
            message, family_id = await client._message(client._family("ethtool"), op, {"header": {"dev-name": "fz0"}}, NLM_F_REQUEST_ACK)
            try:
                replies = await ring.request(message)
            except NetlinkError:
                continue
            for msg in replies:
                if msg.type == family_id:
                    seeds.append(Seed("genl.ethtool", msg.type, bytes(msg.payload), 4))
    return seeds


NFT_RULESET = """
table inet fz {
    set bl {
        type ipv4_addr
        flags interval, timeout
        elements = { 10.0.0.0/24 timeout 1h, 10.9.9.9 }
    }
    chain in2 {
        meta l4proto icmp limit rate 5/second accept
    }
    chain other {
        udp sport 53 goto in2
        return
    }
    chain in {
        type filter hook input priority -5; policy accept;
        ip saddr @bl counter drop
        tcp dport { 22, 80 } ct state new log prefix "new: " group 3 accept
        meta mark & 0xff == 0x7 counter accept
        iifname "lo*" jump other
        ip6 daddr fd00::/8 reject
    }
}
"""


def capture_seeds(netns: str) -> list[Seed]:
    """Real messages from the kernel in ``netns`` (built with
    rtnl_helpers.build_random_config and NFT_RULESET) plus the built ones."""
    return asyncio.run(_capture(netns)) + built_seeds()
