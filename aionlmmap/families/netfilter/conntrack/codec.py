"""ctnetlink messages: decoding flows, expectations and statistics, and
building requests (dumps with kernel-side filters, get, create, update,
delete, flush).

Pure: imports neither asyncio nor socket.

Every ctnetlink payload is ``struct nfgenmsg`` (family = the flow's L3
protocol) followed by CTA_* attributes; numbers inside are big-endian
(``nla_put_be32`` in ctnetlink_fill_info). Attributes this module does not
know are counted in :class:`DecodeCounts`, never fatal; a malformed message
raises :class:`aionlmmap.DecodeError`, which the client counts and skips.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from ....attributes import AttributeBuilder, iter_attributes
from ....constants import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST
from ....decode_counts import DecodeCounts
from ....errors import DecodeError
from ....message import Message
from ..nfnetlink import encode_nfgenmsg, nfnl_type
from . import constants as c
from .objects import Counters, CpuStats, Expectation, Flow, TableCount, Tuple

__all__ = [
    "DecodeCounts",
    "decode_flow",
    "decode_expectation",
    "decode_cpu_stats",
    "decode_table_count",
    "TupleSpec",
    "dump_request",
    "flow_request",
    "create_request",
    "update_request",
    "flush_request",
    "stats_cpu_request",
    "count_request",
    "expect_dump_request",
    "family_number",
]

_BE16 = struct.Struct(">H").unpack_from
_BE32 = struct.Struct(">I").unpack_from
_BE64 = struct.Struct(">Q").unpack_from
_CT = c.NFNL_SUBSYS_CTNETLINK << 8
_EXP = c.NFNL_SUBSYS_CTNETLINK_EXP << 8
_DUMP = NLM_F_REQUEST | NLM_F_DUMP


def family_number(family: int | str | None) -> int:
    """4/6/"ipv4"/"ipv6"/AF_INET/AF_INET6/None -> nfgen_family (0 = both)."""
    if family in (None, 0):
        return 0
    mapped = {4: c.AF_INET, 6: c.AF_INET6, "ipv4": c.AF_INET, "ipv6": c.AF_INET6, "inet": c.AF_INET, "inet6": c.AF_INET6, c.AF_INET: c.AF_INET, c.AF_INET6: c.AF_INET6}.get(family)  # type: ignore[call-overload]
    if mapped is None:
        raise ValueError(f"family {family!r}: use 4, 6, 'ipv4' or 'ipv6' (or None for both)")
    return mapped


# --- decoding ---------------------------------------------------------------------
def _address(buffer: Any, start: int, end: int) -> str:
    size = end - start
    if size == 4:
        return "%d.%d.%d.%d" % tuple(buffer[start:end])
    if size == 16:
        return str(ipaddress.IPv6Address(bytes(buffer[start:end])))
    raise DecodeError(f"conntrack address of {size} bytes (expected 4 or 16)")


def _need(start: int, end: int, size: int, what: str) -> None:
    if end - start < size:
        raise DecodeError(f"conntrack attribute {what}: {end - start} bytes, expected {size}")


def decode_tuple(buffer: Any, start: int, end: int, counts: DecodeCounts) -> Tuple:
    """A CTA_TUPLE_* nest (CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_TUPLE_ZONE)."""
    src = dst = None
    protonum = sport = dport = icmp_type = icmp_code = icmp_id = zone = None
    for attr_type, value_start, value_end in iter_attributes(buffer, start, end):
        if attr_type == c.CTA_TUPLE_IP:
            for ip_type, ip_start, ip_end in iter_attributes(buffer, value_start, value_end):
                if ip_type in (c.CTA_IP_V4_SRC, c.CTA_IP_V6_SRC):
                    src = _address(buffer, ip_start, ip_end)
                elif ip_type in (c.CTA_IP_V4_DST, c.CTA_IP_V6_DST):
                    dst = _address(buffer, ip_start, ip_end)
                else:
                    counts.unknown_attributes += 1
        elif attr_type == c.CTA_TUPLE_PROTO:
            for proto_type, p_start, p_end in iter_attributes(buffer, value_start, value_end):
                if proto_type == c.CTA_PROTO_NUM:
                    _need(p_start, p_end, 1, "CTA_PROTO_NUM")
                    protonum = buffer[p_start]
                elif proto_type == c.CTA_PROTO_SRC_PORT:
                    _need(p_start, p_end, 2, "CTA_PROTO_SRC_PORT")
                    sport = _BE16(buffer, p_start)[0]
                elif proto_type == c.CTA_PROTO_DST_PORT:
                    _need(p_start, p_end, 2, "CTA_PROTO_DST_PORT")
                    dport = _BE16(buffer, p_start)[0]
                elif proto_type in (c.CTA_PROTO_ICMP_TYPE, c.CTA_PROTO_ICMPV6_TYPE):
                    _need(p_start, p_end, 1, "CTA_PROTO_ICMP_TYPE")
                    icmp_type = buffer[p_start]
                elif proto_type in (c.CTA_PROTO_ICMP_CODE, c.CTA_PROTO_ICMPV6_CODE):
                    _need(p_start, p_end, 1, "CTA_PROTO_ICMP_CODE")
                    icmp_code = buffer[p_start]
                elif proto_type in (c.CTA_PROTO_ICMP_ID, c.CTA_PROTO_ICMPV6_ID):
                    _need(p_start, p_end, 2, "CTA_PROTO_ICMP_ID")
                    icmp_id = _BE16(buffer, p_start)[0]
                else:
                    counts.unknown_attributes += 1
        elif attr_type == c.CTA_TUPLE_ZONE:
            _need(value_start, value_end, 2, "CTA_TUPLE_ZONE")
            zone = _BE16(buffer, value_start)[0]
        else:
            counts.unknown_attributes += 1
    return Tuple(src, dst, protonum, sport, dport, icmp_type, icmp_code, icmp_id, zone)


def _counters(buffer: Any, start: int, end: int, counts: DecodeCounts) -> Counters:
    packets = octets = 0
    for attr_type, value_start, value_end in iter_attributes(buffer, start, end):
        if attr_type == c.CTA_COUNTERS_PACKETS:
            _need(value_start, value_end, 8, "CTA_COUNTERS_PACKETS")
            packets = _BE64(buffer, value_start)[0]
        elif attr_type == c.CTA_COUNTERS_BYTES:
            _need(value_start, value_end, 8, "CTA_COUNTERS_BYTES")
            octets = _BE64(buffer, value_start)[0]
        elif attr_type in (3, 4):  # CTA_COUNTERS32_*: old 32-bit counters
            _need(value_start, value_end, 4, "CTA_COUNTERS32")
            if attr_type == 3:
                packets = _BE32(buffer, value_start)[0]
            else:
                octets = _BE32(buffer, value_start)[0]
        elif attr_type != 5:  # CTA_COUNTERS_PAD
            counts.unknown_attributes += 1
    return Counters(packets, octets)


def _string(buffer: Any, start: int, end: int) -> str:
    raw = bytes(buffer[start:end])
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _protoinfo_state(buffer: Any, start: int, end: int, counts: DecodeCounts) -> str | None:
    for attr_type, value_start, value_end in iter_attributes(buffer, start, end):
        names = c.TCP_STATE_NAMES if attr_type == c.CTA_PROTOINFO_TCP else c.SCTP_STATE_NAMES if attr_type == c.CTA_PROTOINFO_SCTP else None
        if names is None:
            counts.unknown_attributes += attr_type != c.CTA_PROTOINFO_DCCP
            continue
        for info_type, i_start, i_end in iter_attributes(buffer, value_start, value_end):
            if info_type == 1:  # CTA_PROTOINFO_TCP_STATE / CTA_PROTOINFO_SCTP_STATE
                _need(i_start, i_end, 1, "CTA_PROTOINFO state")
                number = buffer[i_start]
                return names[number] if number < len(names) else str(number)
    return None


_KNOWN_SKIPPED = frozenset({c.CTA_NAT_SRC, c.CTA_NAT_DST, c.CTA_SEQ_ADJ_ORIG, c.CTA_SEQ_ADJ_REPLY, c.CTA_SECMARK, c.CTA_SYNPROXY, c.CTA_LABELS_MASK, c.CTA_TIMESTAMP_EVENT})


def decode_flow(buffer: Any, start: int, end: int, counts: DecodeCounts) -> Flow:
    """One IPCTNL_MSG_CT_NEW/DELETE payload (``buffer[start:end]``, starting
    at the nfgenmsg) as a :class:`Flow`."""
    if end - start < 4:
        raise DecodeError(f"ctnetlink payload of {end - start} bytes is shorter than the 4-byte nfgenmsg")
    family = buffer[start]
    original = reply = master = None
    status = 0
    timeout = mark = zone = use = flow_id = None
    state = helper = secctx = None
    counters_original = counters_reply = None
    labels = None
    ts_start = ts_stop = None
    for attr_type, value_start, value_end in iter_attributes(buffer, start + 4, end):
        if attr_type == c.CTA_TUPLE_ORIG:
            original = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_TUPLE_REPLY:
            reply = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_STATUS:
            _need(value_start, value_end, 4, "CTA_STATUS")
            status = _BE32(buffer, value_start)[0]
        elif attr_type == c.CTA_TIMEOUT:
            _need(value_start, value_end, 4, "CTA_TIMEOUT")
            timeout = _BE32(buffer, value_start)[0]
        elif attr_type == c.CTA_MARK:
            _need(value_start, value_end, 4, "CTA_MARK")
            mark = _BE32(buffer, value_start)[0]
        elif attr_type == c.CTA_USE:
            _need(value_start, value_end, 4, "CTA_USE")
            use = _BE32(buffer, value_start)[0]
        elif attr_type == c.CTA_ID:
            _need(value_start, value_end, 4, "CTA_ID")
            flow_id = _BE32(buffer, value_start)[0]
        elif attr_type == c.CTA_ZONE:
            _need(value_start, value_end, 2, "CTA_ZONE")
            zone = _BE16(buffer, value_start)[0]
        elif attr_type == c.CTA_PROTOINFO:
            state = _protoinfo_state(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_COUNTERS_ORIG:
            counters_original = _counters(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_COUNTERS_REPLY:
            counters_reply = _counters(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_LABELS:
            labels = bytes(buffer[value_start:value_end])
        elif attr_type == c.CTA_HELP:
            for help_type, h_start, h_end in iter_attributes(buffer, value_start, value_end):
                if help_type == c.CTA_HELP_NAME:
                    helper = _string(buffer, h_start, h_end)
        elif attr_type == c.CTA_SECCTX:
            for ctx_type, s_start, s_end in iter_attributes(buffer, value_start, value_end):
                if ctx_type == c.CTA_SECCTX_NAME:
                    secctx = _string(buffer, s_start, s_end)
        elif attr_type == c.CTA_TIMESTAMP:
            for ts_type, t_start, t_end in iter_attributes(buffer, value_start, value_end):
                if ts_type == c.CTA_TIMESTAMP_START and t_end - t_start >= 8:
                    ts_start = _BE64(buffer, t_start)[0]
                elif ts_type == c.CTA_TIMESTAMP_STOP and t_end - t_start >= 8:
                    ts_stop = _BE64(buffer, t_start)[0]
        elif attr_type == c.CTA_TUPLE_MASTER:
            master = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type not in _KNOWN_SKIPPED:
            counts.unknown_attributes += 1
    if original is None:
        raise DecodeError("conntrack message without CTA_TUPLE_ORIG")
    return Flow(
        family, original, reply if reply is not None else Tuple(), status, timeout, mark, zone, use, flow_id, state,
        counters_original, counters_reply, labels, helper, secctx, ts_start, ts_stop, master,
    )  # fmt: skip


def decode_expectation(buffer: Any, start: int, end: int, counts: DecodeCounts) -> Expectation:
    """One IPCTNL_MSG_EXP_NEW payload."""
    if end - start < 4:
        raise DecodeError(f"ctnetlink payload of {end - start} bytes is shorter than the 4-byte nfgenmsg")
    family = buffer[start]
    expect_tuple = mask = master = None
    timeout = expect_id = zone = expect_class = None
    helper = None
    flags = 0
    for attr_type, value_start, value_end in iter_attributes(buffer, start + 4, end):
        if attr_type == c.CTA_EXPECT_TUPLE:
            expect_tuple = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_EXPECT_MASK:
            mask = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type == c.CTA_EXPECT_MASTER:
            master = decode_tuple(buffer, value_start, value_end, counts)
        elif attr_type in (c.CTA_EXPECT_TIMEOUT, c.CTA_EXPECT_ID, c.CTA_EXPECT_FLAGS, c.CTA_EXPECT_CLASS):
            _need(value_start, value_end, 4, "CTA_EXPECT_*")
            value = _BE32(buffer, value_start)[0]
            if attr_type == c.CTA_EXPECT_TIMEOUT:
                timeout = value
            elif attr_type == c.CTA_EXPECT_ID:
                expect_id = value
            elif attr_type == c.CTA_EXPECT_FLAGS:
                flags = value
            else:
                expect_class = value
        elif attr_type == c.CTA_EXPECT_ZONE:
            _need(value_start, value_end, 2, "CTA_EXPECT_ZONE")
            zone = _BE16(buffer, value_start)[0]
        elif attr_type == c.CTA_EXPECT_HELP_NAME:
            helper = _string(buffer, value_start, value_end)
        elif attr_type not in (10, 11):  # CTA_EXPECT_NAT, CTA_EXPECT_FN
            counts.unknown_attributes += 1
    if expect_tuple is None:
        raise DecodeError("expectation message without CTA_EXPECT_TUPLE")
    return Expectation(family, expect_tuple, mask, master, timeout, expect_id, helper, zone, flags, expect_class)


def decode_cpu_stats(buffer: Any, start: int, end: int, counts: DecodeCounts) -> CpuStats:
    """One IPCTNL_MSG_CT_GET_STATS_CPU reply: nfgenmsg.res_id is the CPU."""
    if end - start < 4:
        raise DecodeError("conntrack statistics message shorter than its nfgenmsg")
    cpu = _BE16(buffer, start + 2)[0]
    values: dict[str, int] = {}
    for attr_type, value_start, value_end in iter_attributes(buffer, start + 4, end):
        name = c.STATS_CPU_NAMES.get(attr_type)
        if name is None or value_end - value_start < 4:
            counts.unknown_attributes += 1
            continue
        values[name] = _BE32(buffer, value_start)[0]
    return CpuStats(cpu, values)


def decode_table_count(buffer: Any, start: int, end: int, counts: DecodeCounts) -> TableCount:
    """The IPCTNL_MSG_CT_GET_STATS reply."""
    entries = max_entries = None
    for attr_type, value_start, value_end in iter_attributes(buffer, start + 4, end):
        if attr_type in (c.CTA_STATS_GLOBAL_ENTRIES, c.CTA_STATS_GLOBAL_MAX_ENTRIES):
            _need(value_start, value_end, 4, "CTA_STATS_GLOBAL_*")
            if attr_type == c.CTA_STATS_GLOBAL_ENTRIES:
                entries = _BE32(buffer, value_start)[0]
            else:
                max_entries = _BE32(buffer, value_start)[0]
        else:
            counts.unknown_attributes += 1
    if entries is None:
        raise DecodeError("conntrack table count reply without CTA_STATS_GLOBAL_ENTRIES")
    return TableCount(entries, max_entries)


# --- requests ---------------------------------------------------------------------
class TupleSpec:
    """A tuple to send: what the kernel's ctnetlink_parse_tuple reads.

    ``TupleSpec("10.0.0.1", "10.0.0.2", "tcp", sport=1234, dport=80)``;
    for a filter, unset fields are left out of the match."""

    __slots__ = ("src", "dst", "protocol", "sport", "dport", "icmp_type", "icmp_code", "icmp_id")

    def __init__(
        self,
        src: str | None = None,
        dst: str | None = None,
        protocol: int | str | None = None,
        *,
        sport: int | None = None,
        dport: int | None = None,
        icmp_type: int | None = None,
        icmp_code: int | None = None,
        icmp_id: int | None = None,
    ) -> None:
        self.src = None if src is None else ipaddress.ip_address(src)
        self.dst = None if dst is None else ipaddress.ip_address(dst)
        if self.src is not None and self.dst is not None and self.src.version != self.dst.version:
            raise ValueError(f"tuple mixes IPv{self.src.version} source and IPv{self.dst.version} destination")
        if isinstance(protocol, str):
            if protocol not in c.PROTOCOL_NUMBERS:
                raise ValueError(f"unknown protocol {protocol!r}: use one of {sorted(c.PROTOCOL_NUMBERS)} or a number")
            protocol = c.PROTOCOL_NUMBERS[protocol]
        self.protocol = protocol
        for name, value, limit in (("sport", sport, 0xFFFF), ("dport", dport, 0xFFFF), ("icmp_type", icmp_type, 0xFF), ("icmp_code", icmp_code, 0xFF), ("icmp_id", icmp_id, 0xFFFF)):
            if value is not None and not 0 <= value <= limit:
                raise ValueError(f"{name} {value} out of range 0..{limit}")
        if (sport is not None or dport is not None) and protocol is None:
            raise ValueError("ports need a protocol (tcp, udp, sctp, ...)")
        self.sport, self.dport = sport, dport
        self.icmp_type, self.icmp_code, self.icmp_id = icmp_type, icmp_code, icmp_id

    @property
    def family(self) -> int:
        address = self.src or self.dst
        if address is None:
            return 0
        return c.AF_INET if address.version == 4 else c.AF_INET6

    def filter_flags(self) -> int:
        flags = 0
        # IPv6 addresses stay out of the kernel's filter: its
        # ctnetlink_filter_match_tuple tests `!ipv6_addr_cmp(...)`, which
        # drops exactly the entries that match (seen on 6.18). The client
        # filters them instead.
        if self.family != c.AF_INET6:
            if self.src is not None:
                flags |= c.CTA_FILTER_F_CTA_IP_SRC
            if self.dst is not None:
                flags |= c.CTA_FILTER_F_CTA_IP_DST
        if self.protocol is not None:
            flags |= c.CTA_FILTER_F_CTA_PROTO_NUM
        if self.sport is not None:
            flags |= c.CTA_FILTER_F_CTA_PROTO_SRC_PORT
        if self.dport is not None:
            flags |= c.CTA_FILTER_F_CTA_PROTO_DST_PORT
        return flags

    def matches(self, tuple_: Tuple) -> bool:
        """The same test as the kernel's ctnetlink_filter_match_tuple."""
        if self.src is not None and tuple_.src != str(self.src):
            return False
        if self.dst is not None and tuple_.dst != str(self.dst):
            return False
        if self.protocol is not None and tuple_.protonum != self.protocol:
            return False
        if self.sport is not None and tuple_.sport != self.sport:
            return False
        return self.dport is None or tuple_.dport == self.dport

    def add_to(self, builder: AttributeBuilder, attr_type: int, zone: int | None = None) -> None:
        with builder.nested(attr_type):
            if self.src is not None or self.dst is not None:
                with builder.nested(c.CTA_TUPLE_IP):
                    v6 = (self.src or self.dst).version == 6  # type: ignore[union-attr]
                    if self.src is not None:
                        builder.add(c.CTA_IP_V6_SRC if v6 else c.CTA_IP_V4_SRC, self.src.packed)
                    if self.dst is not None:
                        builder.add(c.CTA_IP_V6_DST if v6 else c.CTA_IP_V4_DST, self.dst.packed)
            if self.protocol is not None:
                with builder.nested(c.CTA_TUPLE_PROTO):
                    builder.add_u8(c.CTA_PROTO_NUM, self.protocol)
                    if self.sport is not None:
                        builder.add_be16(c.CTA_PROTO_SRC_PORT, self.sport)
                    if self.dport is not None:
                        builder.add_be16(c.CTA_PROTO_DST_PORT, self.dport)
                    v6 = self.protocol == c.IPPROTO_ICMPV6
                    if self.icmp_id is not None:
                        builder.add_be16(c.CTA_PROTO_ICMPV6_ID if v6 else c.CTA_PROTO_ICMP_ID, self.icmp_id)
                    if self.icmp_type is not None:
                        builder.add_u8(c.CTA_PROTO_ICMPV6_TYPE if v6 else c.CTA_PROTO_ICMP_TYPE, self.icmp_type)
                    if self.icmp_code is not None:
                        builder.add_u8(c.CTA_PROTO_ICMPV6_CODE if v6 else c.CTA_PROTO_ICMP_CODE, self.icmp_code)
            if zone is not None:
                builder.add_be16(c.CTA_TUPLE_ZONE, zone)

    def reversed(self) -> TupleSpec:
        """The reply direction of a flow that answers from where it was sent."""
        return TupleSpec(
            None if self.dst is None else str(self.dst), None if self.src is None else str(self.src), self.protocol,
            sport=self.dport, dport=self.sport, icmp_type=_icmp_reply(self.icmp_type, self.protocol), icmp_code=self.icmp_code, icmp_id=self.icmp_id,
        )  # fmt: skip


def _icmp_reply(icmp_type: int | None, protocol: int | None) -> int | None:
    # echo request -> echo reply (nf_conntrack_invert_icmp_tuple's table)
    replies = {8: 0, 13: 14, 15: 16, 17: 18} if protocol == c.IPPROTO_ICMP else {128: 129}
    return None if icmp_type is None else replies.get(icmp_type, icmp_type)


def _check_u32(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} {value} out of range 0..0xffffffff")


def dump_request(
    family: int = 0,
    *,
    mark: int | None = None,
    mark_mask: int | None = None,
    status: int | None = None,
    status_mask: int | None = None,
    zone: int | None = None,
    original: TupleSpec | None = None,
    reply: TupleSpec | None = None,
    zero_counters: bool = False,
) -> Message:
    """IPCTNL_MSG_CT_GET dump, filtered in the kernel (ctnetlink_start ->
    ctnetlink_alloc_filter): family by nfgen_family, CTA_MARK/CTA_MARK_MASK,
    CTA_STATUS/CTA_STATUS_MASK, and tuple fields or the zone through
    CTA_FILTER with CTA_TUPLE_ORIG/REPLY (Linux >= 5.8; the zone from 6.8)."""
    _check_u32("mark", mark)
    _check_u32("mark_mask", mark_mask)
    _check_u32("status", status)
    _check_u32("status_mask", status_mask)
    if mark_mask is not None and mark is None:
        raise ValueError("mark_mask needs a mark (the kernel answers EINVAL)")
    if status_mask is not None and status is None:
        raise ValueError("status_mask needs a status (the kernel answers EINVAL)")
    if status is not None and (status_mask if status_mask is not None else status) == 0:
        raise ValueError("status 0 needs a non-zero status_mask (the kernel answers EINVAL)")
    builder = AttributeBuilder()
    if mark is not None:
        builder.add_be32(c.CTA_MARK, mark)
        if mark_mask is not None:
            builder.add_be32(c.CTA_MARK_MASK, mark_mask)
    if status is not None:
        builder.add_be32(c.CTA_STATUS, status)
        if status_mask is not None:
            builder.add_be32(c.CTA_STATUS_MASK, status_mask)
    orig_flags = original.filter_flags() if original is not None else 0
    reply_flags = reply.filter_flags() if reply is not None else 0
    if zone is not None:
        if not 0 <= zone <= 0xFFFF:
            raise ValueError(f"zone {zone} out of range 0..65535")
        orig_flags |= c.CTA_FILTER_F_CTA_TUPLE_ZONE
    for spec in (original, reply):
        if spec is not None and spec.family and family and spec.family != family:
            raise ValueError("the tuple's addresses are of another family than the dump's")
        if spec is not None and spec.family and not family:
            family = spec.family
    if orig_flags or reply_flags:
        if not family:
            # ctnetlink_parse_tuple_filter answers EOPNOTSUPP unless nfgen_family
            # is IPv4 or IPv6.
            raise ValueError("a tuple or zone filter needs a family (4 or 6): the kernel filters tuples of one family")
        (original or TupleSpec()).add_to(builder, c.CTA_TUPLE_ORIG, zone)
        if reply_flags:
            reply.add_to(builder, c.CTA_TUPLE_REPLY)  # type: ignore[union-attr]
        # The zone goes in the tuple only: a CTA_ZONE beside it makes
        # ctnetlink_parse_tuple_zone answer EINVAL (the zone is set twice).
        with builder.nested(c.CTA_FILTER):
            builder.add_u32(c.CTA_FILTER_ORIG_FLAGS, orig_flags)
            builder.add_u32(c.CTA_FILTER_REPLY_FLAGS, reply_flags)
    msg_type = c.IPCTNL_MSG_CT_GET_CTRZERO if zero_counters else c.IPCTNL_MSG_CT_GET
    return Message(_CT | msg_type, _DUMP, payload=encode_nfgenmsg(family) + builder.build())


def flow_request(msg_type: int, original: TupleSpec, *, zone: int | None = None, flow_id: int | None = None) -> Message:
    """IPCTNL_MSG_CT_GET or _DELETE of the entry with this original tuple."""
    if original.src is None or original.dst is None or original.protocol is None:
        raise ValueError("get/delete need the full original tuple: src, dst, protocol (and ports for tcp/udp)")
    builder = AttributeBuilder()
    original.add_to(builder, c.CTA_TUPLE_ORIG)
    if zone is not None:
        builder.add_be16(c.CTA_ZONE, zone)
    if flow_id is not None:
        builder.add_be32(c.CTA_ID, flow_id)
    flags = NLM_F_REQUEST | (NLM_F_ACK if msg_type == c.IPCTNL_MSG_CT_DELETE else 0)
    return Message(_CT | msg_type, flags, payload=encode_nfgenmsg(original.family) + builder.build())


def _labels(builder: AttributeBuilder, labels: bytes | None, labels_mask: bytes | None) -> None:
    if labels is None:
        return
    if len(labels) % 4 or not labels or len(labels) > 16:
        raise ValueError("labels are 4 to 16 bytes, a multiple of 4 (128 label bits at most)")
    builder.add(c.CTA_LABELS, labels)
    if labels_mask is not None:
        if len(labels_mask) != len(labels):
            raise ValueError("labels_mask must be as long as labels")
        builder.add(c.CTA_LABELS_MASK, labels_mask)


def create_request(
    original: TupleSpec,
    reply: TupleSpec | None = None,
    *,
    timeout: int,
    status: int = c.IPS_CONFIRMED,
    mark: int | None = None,
    zone: int | None = None,
    tcp_state: str | None = None,
    labels: bytes | None = None,
) -> Message:
    """IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL (ctnetlink_create_conntrack
    needs both tuples and CTA_TIMEOUT)."""
    if original.src is None or original.dst is None or original.protocol is None:
        raise ValueError("create needs src, dst and protocol")
    _check_u32("timeout", timeout)
    _check_u32("mark", mark)
    reply = reply or original.reversed()
    builder = AttributeBuilder()
    original.add_to(builder, c.CTA_TUPLE_ORIG)
    reply.add_to(builder, c.CTA_TUPLE_REPLY)
    builder.add_be32(c.CTA_TIMEOUT, timeout)
    builder.add_be32(c.CTA_STATUS, status)
    if mark is not None:
        builder.add_be32(c.CTA_MARK, mark)
    if zone is not None:
        builder.add_be16(c.CTA_ZONE, zone)
    if tcp_state is not None:
        state = tcp_state.upper()
        if state not in c.TCP_STATE_NAMES:
            raise ValueError(f"unknown TCP state {tcp_state!r}: use one of {', '.join(c.TCP_STATE_NAMES)}")
        with builder.nested(c.CTA_PROTOINFO), builder.nested(c.CTA_PROTOINFO_TCP):
            builder.add_u8(c.CTA_PROTOINFO_TCP_STATE, c.TCP_STATE_NAMES.index(state))
    _labels(builder, labels, None)
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    return Message(_CT | c.IPCTNL_MSG_CT_NEW, flags, payload=encode_nfgenmsg(original.family) + builder.build())


def update_request(
    original: TupleSpec,
    *,
    zone: int | None = None,
    mark: int | None = None,
    timeout: int | None = None,
    status: int | None = None,
    labels: bytes | None = None,
    labels_mask: bytes | None = None,
) -> Message:
    """IPCTNL_MSG_CT_NEW without NLM_F_CREATE: ctnetlink_change_conntrack on
    the existing entry (status may only add bits the kernel lets user space
    set: ctnetlink_change_status refuses to clear CONFIRMED, SEEN_REPLY, ...)."""
    if original.src is None or original.dst is None or original.protocol is None:
        raise ValueError("update needs the full original tuple: src, dst, protocol (and ports)")
    if mark is None and timeout is None and status is None and labels is None:
        raise ValueError("nothing to update: give mark, timeout, status or labels")
    _check_u32("timeout", timeout)
    _check_u32("mark", mark)
    _check_u32("status", status)
    builder = AttributeBuilder()
    original.add_to(builder, c.CTA_TUPLE_ORIG)
    if zone is not None:
        builder.add_be16(c.CTA_ZONE, zone)
    if timeout is not None:
        builder.add_be32(c.CTA_TIMEOUT, timeout)
    if status is not None:
        builder.add_be32(c.CTA_STATUS, status)
    if mark is not None:
        builder.add_be32(c.CTA_MARK, mark)
    _labels(builder, labels, labels_mask)
    return Message(_CT | c.IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK, payload=encode_nfgenmsg(original.family) + builder.build())


def flush_request(family: int = 0, *, mark: int | None = None, mark_mask: int | None = None) -> Message:
    """IPCTNL_MSG_CT_DELETE without a tuple: ctnetlink_flush_conntrack
    deletes every entry of ``family`` (0 = all), or those whose mark matches."""
    _check_u32("mark", mark)
    _check_u32("mark_mask", mark_mask)
    builder = AttributeBuilder()
    if mark is not None:
        builder.add_be32(c.CTA_MARK, mark)
        if mark_mask is not None:
            builder.add_be32(c.CTA_MARK_MASK, mark_mask)
    elif mark_mask is not None:
        raise ValueError("mark_mask needs a mark")
    return Message(_CT | c.IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, payload=encode_nfgenmsg(family) + builder.build())


def stats_cpu_request() -> Message:
    return Message(_CT | c.IPCTNL_MSG_CT_GET_STATS_CPU, _DUMP, payload=encode_nfgenmsg(0))


def count_request() -> Message:
    return Message(_CT | c.IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST, payload=encode_nfgenmsg(0))


def expect_dump_request(family: int = 0) -> Message:
    return Message(_EXP | c.IPCTNL_MSG_EXP_GET, _DUMP, payload=encode_nfgenmsg(family))


def message_type(msg_type: int) -> int:
    """nfnl_type(NFNL_SUBSYS_CTNETLINK, msg_type)."""
    return nfnl_type(c.NFNL_SUBSYS_CTNETLINK, msg_type)
