"""sock_diag messages: inet_diag and unix_diag requests, and decoding
their answers into :class:`InetSocket` and :class:`UnixSocket`.

Pure: imports neither asyncio nor socket (addresses are formatted here,
IPv6 as inet_ntop(3) writes them, which is what ``ss`` prints).

Attributes of unknown type are counted in :class:`DecodeCounts`, never
fatal; a malformed message raises :class:`aionlmmap.DecodeError`, which the
client counts and skips.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from ... import address_text
from ..._extensions import speedups as _speedups
from ...attributes import iter_attributes
from ...constants import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN
from ...decode_counts import DecodeCounts
from ...errors import DecodeError
from ...message import Message, header_run
from . import constants as c
from .objects import JSON_IFINDEX, JSON_TIMER, InetSocket, closed_template, open_template

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

    from .unix_socket import UnixSocket

__all__ = ["DecodeCounts", "AddressText", "state_mask", "inet_request", "tcp_request_every_family", "unix_request", "destroy_request", "decode_inet", "decode_inet_chunk", "inet_chunk_json", "decode_unix", "TCP_INFO_FIELDS"]

_DUMP = NLM_F_REQUEST | NLM_F_DUMP
#: struct inet_diag_req_v2 without its sockid, and the sockid
_REQ_V2 = struct.Struct("=BBBBI")
#: struct inet_diag_req (TCPDIAG_GETSOCK) around its sockid
_COMPAT_REQ = struct.Struct("=BBBB")
_COMPAT_STATES = struct.Struct("=II")
_SOCKID_SIZE = 48
#: struct inet_diag_msg: family, state, timer, retrans, sockid (ports are
#: big-endian, read here as native u16 and swapped), expires, rqueue,
#: wqueue, uid, inode
_MSG = struct.Struct("=BBBBHH16s16sIQIIIII")
_MSG_SIZE = _MSG.size  # 72
_UNIX_REQ = struct.Struct("=BBHIIIII")
_UNIX_MSG = struct.Struct("=BBBxIQ")
_U32 = struct.Struct("=I").unpack_from
_U64 = struct.Struct("=Q").unpack_from
_MEMINFO = struct.Struct("=IIII")
_NOCOOKIE = b"\xff" * 8


#: ``inet_ntop(AF_INET6, raw)``, as ss prints an address: IPv4-mapped and
#: IPv4-compatible addresses end in a dotted quad (glibc's inet_ntop6), which
#: :mod:`ipaddress` before Python 3.13 writes as hex words; a dual-stack
#: listener's IPv4 peers are such addresses. The compiled twin where in use.
_ipv6_text = address_text.ipv6_text
_pure_ipv6_text = address_text._pure_ipv6_text


def state_mask(states: int | str | Iterable[str] | None) -> int:
    """ss's state words ("established", "listening", "connected", ...) or a
    bit mask -> the kernel's idiag_states mask."""
    if states is None:
        return c.ALL_STATES
    if isinstance(states, int):
        return states
    if isinstance(states, str):
        states = [states]
    mask = 0
    for word in states:
        bits = c.STATE_FILTERS.get(word.lower())
        if bits is None:
            raise ValueError(f"unknown state {word!r}: use one of {', '.join(c.STATE_FILTERS)}")
        mask |= bits
    return mask


def extension_bits(extensions: tuple[str, ...] | list[str]) -> int:
    bits = 0
    for name in extensions:
        if name in ("mark", "cgroup_id", "cong_algorithm"):
            continue  # sent without asking (INET_DIAG_MARK for CAP_NET_ADMIN, INET_DIAG_CGROUP_ID always)
        bit = c.EXTENSIONS.get(name)
        if bit is None:
            raise ValueError(f"unknown extension {name!r}: use {', '.join(sorted(c.EXTENSIONS))}")
        bits |= bit
    return bits


def inet_request(family: int, protocol: int, states: int = c.ALL_STATES, extensions: int = 0, bytecode: bytes | None = None) -> Message:
    """SOCK_DIAG_BY_FAMILY dump of ``protocol`` sockets of ``family``
    (inet_diag_dump_icsk / udp_dump), states as a bit mask, ``extensions``
    as idiag_ext bits, ``bytecode`` from :mod:`.bytecode`."""
    payload = _REQ_V2.pack(family, protocol, extensions, 0, states) + bytes(40) + _NOCOOKIE
    if bytecode:
        length = 4 + len(bytecode)
        payload += struct.pack("=HH", length, c.INET_DIAG_REQ_BYTECODE) + bytecode + bytes((-length) % 4)
    return Message(c.SOCK_DIAG_BY_FAMILY, _DUMP, payload=payload)


def tcp_request_every_family(states: int = c.ALL_STATES, bytecode: bytes | None = None) -> Message:
    """TCPDIAG_GETSOCK dump of TCP sockets of both address families, one
    walk of the listening and established hashes. A SOCK_DIAG_BY_FAMILY
    request names one family, and the kernel's walk for it passes every
    socket of the other (a request for IPv6 sockets in a table of 10,000
    IPv4 ones costs ~5 ms of kernel time and yields nothing); this one
    (struct inet_diag_req: family, src_len, dst_len, ext, sockid, states,
    dbs) takes the sockets of both families in the same pass, in table
    order, IPv4 and IPv6 interleaved. ``bytecode`` (from :mod:`.bytecode`)
    is audited and run as for :func:`inet_request`."""
    payload = _COMPAT_REQ.pack(0, 0, 0, 0) + bytes(40) + _NOCOOKIE + _COMPAT_STATES.pack(states, 0)
    if bytecode:
        length = 4 + len(bytecode)
        payload += struct.pack("=HH", length, c.INET_DIAG_REQ_BYTECODE) + bytecode + bytes((-length) % 4)
    return Message(c.TCPDIAG_GETSOCK, _DUMP, payload=payload)


def unix_request(states: int = c.ALL_STATES, show: int = c.UDIAG_SHOW_NAME | c.UDIAG_SHOW_PEER | c.UDIAG_SHOW_RQLEN) -> Message:
    return Message(c.SOCK_DIAG_BY_FAMILY, _DUMP, payload=_UNIX_REQ.pack(c.AF_UNIX, 0, 0, states, 0, show, 0xFFFFFFFF, 0xFFFFFFFF))


def destroy_request(sock: InetSocket) -> Message:
    """SOCK_DESTROY of exactly this socket: its sockid rebuilt from the dump
    (ports, addresses, interface, cookie; inet_diag_find_one_icsk refuses a
    cookie that no longer matches)."""
    if sock.family == c.AF_INET:
        local, peer = bytes(int(part) for part in sock.local_address.split(".")) + bytes(12), bytes(int(part) for part in sock.peer_address.split(".")) + bytes(12)
    else:
        import ipaddress

        local, peer = ipaddress.IPv6Address(sock.local_address).packed, ipaddress.IPv6Address(sock.peer_address).packed
    sockid = struct.pack(">HH", sock.local_port, sock.peer_port) + local + peer + struct.pack("=IQ", sock.ifindex, sock.cookie)
    payload = _REQ_V2.pack(sock.family, sock.protocol, 0, 0, c.ALL_STATES) + sockid
    return Message(c.SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, payload=payload)


#: tcp_info fields in order (include/uapi/linux/tcp.h), name and struct code;
#: a kernel sends a prefix of them (older ones are shorter).
TCP_INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"), ("options", "B"),
    ("wscale", "B"), ("flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"), ("snd_cwnd", "I"),
    ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"), ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"), ("snd_wnd", "I"),
)  # fmt: skip
_TCP_INFO_PREFIXES: list[tuple[int, struct.Struct, tuple[str, ...]]] = []
for _count in range(1, len(TCP_INFO_FIELDS) + 1):
    _codec = struct.Struct("=" + "".join(code for _name, code in TCP_INFO_FIELDS[:_count]))
    _TCP_INFO_PREFIXES.append((_codec.size, _codec, tuple(name for name, _code in TCP_INFO_FIELDS[:_count])))


def decode_tcp_info(buffer: Any, start: int, end: int) -> dict[str, int]:
    """The longest prefix of ``struct tcp_info`` that fits."""
    size = end - start
    for prefix_size, codec, names in reversed(_TCP_INFO_PREFIXES):
        if prefix_size <= size:
            values = dict(zip(names, codec.unpack_from(buffer, start)))
            if "wscale" in values:
                wscale = values.pop("wscale")
                values["snd_wscale"], values["rcv_wscale"] = wscale & 0xF, wscale >> 4
            return values
    return {}


def _inet_extensions(buffer: Any, start: int, end: int, counts: DecodeCounts) -> tuple[dict[str, Any], int | None]:
    out: dict[str, Any] = {}
    protocol = None
    for attr_type, value_start, value_end in iter_attributes(buffer, start, end):
        size = value_end - value_start
        if attr_type == c.INET_DIAG_INFO:
            out["tcp_info"] = decode_tcp_info(buffer, value_start, value_end)
        elif attr_type == c.INET_DIAG_MEMINFO and size >= 16:
            out["meminfo"] = dict(zip(("rmem", "wmem", "fmem", "tmem"), _MEMINFO.unpack_from(buffer, value_start)))
        elif attr_type == c.INET_DIAG_SKMEMINFO:
            count = min(size // 4, len(c.SK_MEMINFO_NAMES))
            out["skmeminfo"] = dict(zip(c.SK_MEMINFO_NAMES, struct.unpack_from(f"={count}I", buffer, value_start)))
        elif attr_type == c.INET_DIAG_CONG:
            out["cong"] = bytes(buffer[value_start:value_end]).split(b"\0", 1)[0].decode("ascii", "replace")
        elif attr_type == c.INET_DIAG_MARK and size >= 4:
            out["mark"] = _U32(buffer, value_start)[0]
        elif attr_type == c.INET_DIAG_CGROUP_ID and size >= 8:
            out["cgroup_id"] = _U64(buffer, value_start)[0]
        elif attr_type in (c.INET_DIAG_TOS, c.INET_DIAG_TCLASS, c.INET_DIAG_SHUTDOWN, c.INET_DIAG_SKV6ONLY) and size >= 1:
            out[{c.INET_DIAG_TOS: "tos", c.INET_DIAG_TCLASS: "tclass", c.INET_DIAG_SHUTDOWN: "shutdown", c.INET_DIAG_SKV6ONLY: "v6only"}[attr_type]] = buffer[value_start]
        elif attr_type == c.INET_DIAG_CLASS_ID and size >= 4:
            out["class_id"] = _U32(buffer, value_start)[0]
        elif attr_type == c.INET_DIAG_PROTOCOL and size >= 1:
            protocol = buffer[value_start]
        elif attr_type in (c.INET_DIAG_VEGASINFO, c.INET_DIAG_DCTCPINFO, c.INET_DIAG_BBRINFO, c.INET_DIAG_ULP_INFO, c.INET_DIAG_SOCKOPT, c.INET_DIAG_PAD, c.INET_DIAG_MD5SIG, c.INET_DIAG_SK_BPF_STORAGES):
            pass  # known, not decoded (per-algorithm info, ULP, sockopt bits, BPF storage)
        else:
            counts.unknown_attributes += 1
    return out, protocol


_new_inet = tuple.__new__


class AddressText:
    """Address bytes -> text, cached: a socket table repeats a few
    addresses many times (``ipaddress`` takes ~20 us per IPv6 address)."""

    __slots__ = ("v4", "v6")

    def __init__(self) -> None:
        self.v4: dict[bytes, str] = {}
        self.v6: dict[bytes, str] = {}

    def __call__(self, family: int, raw: bytes) -> str:
        table = self.v4 if family == c.AF_INET else self.v6
        text = table.get(raw)
        if text is None:
            if len(table) > 65536:
                table.clear()
            text = table[raw] = "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3]) if family == c.AF_INET else _ipv6_text(raw)
        return text


def decode_inet(buffer: Any, start: int, end: int, protocol: int, counts: DecodeCounts, extensions: bool = True, text: AddressText | None = None) -> InetSocket:
    """One inet_diag_msg (``buffer[start:end]``) as an :class:`InetSocket`;
    its attributes are decoded when ``extensions`` is true."""
    if end - start < _MSG_SIZE:
        raise DecodeError(f"inet_diag_msg of {end - start} bytes is shorter than its 72-byte header")
    family, state, timer, retrans, sport, dport, src, dst, ifindex, cookie, expires, rqueue, wqueue, uid, inode = _MSG.unpack_from(buffer, start)
    if family != c.AF_INET and family != c.AF_INET6:
        raise DecodeError(f"inet_diag_msg of address family {family}")
    text = text or AddressText()
    decoded = None
    if extensions and end - start > _MSG_SIZE:
        decoded, sent_protocol = _inet_extensions(buffer, start + _MSG_SIZE, end, counts)
        if sent_protocol is not None:
            protocol = sent_protocol
    return _new_inet(InetSocket, (
        family, protocol, state, text(family, src), (sport & 0xFF) << 8 | sport >> 8, text(family, dst), (dport & 0xFF) << 8 | dport >> 8,
        rqueue, wqueue, inode, uid, ifindex, cookie, timer, retrans, expires, decoded or None,
    ))  # fmt: skip


def _inet_runs(buffer: Any, end: int, counts: DecodeCounts) -> Iterator[tuple[int, int, int]]:
    """The runs of identical nlmsghdrs (:func:`header_run`) of a dump chunk
    that hold inet_diag_msgs, as ``range`` arguments over their messages'
    payloads: a step per run, not per socket. A run of messages shorter
    than inet_diag_msg is counted as malformed and skipped; a header that is
    truncated or runs past ``end`` ends the walk (counted); other message
    types (NLMSG_DONE, handled by the ring) are skipped."""
    offset = 0
    while offset < end:
        run, header = header_run(buffer, offset, end)
        if header is None:
            counts.malformed += 1
            return
        length = header[0]
        step = (length + 3) & ~3
        stop = offset + run * step
        if header[1] == c.SOCK_DIAG_BY_FAMILY or header[1] == c.TCPDIAG_GETSOCK:
            if length < NLMSG_HDRLEN + _MSG_SIZE:
                counts.malformed += run
            else:
                yield offset + NLMSG_HDRLEN, stop, step
        offset = stop


def decode_inet_chunk(buffer: Any, end: int, protocol: int, counts: DecodeCounts, text: AddressText) -> list[InetSocket]:
    """Every SOCK_DIAG_BY_FAMILY message of a dump chunk (``buffer[:end]``)
    as InetSockets, attributes not decoded: the dump fast path.

    A chunk is one run of identical nlmsghdrs (:func:`header_run`: one
    inet_diag_fill for one request, and every TCP socket carries the same
    attributes), so the headers are checked once per run and each socket
    costs one unpack of its inet_diag_msg. A message shorter than
    inet_diag_msg or of another address family is counted as malformed and
    skipped; a header that is truncated or runs past ``end`` ends the walk
    (counted). The messages are inet_diag_msgs of SOCK_DIAG_BY_FAMILY or of
    TCPDIAG_GETSOCK (the reply type of :func:`tcp_request_every_family`);
    other message types (NLMSG_DONE, handled by the ring) are skipped."""
    out: list[InetSocket] = []
    append = out.append
    unpack = _MSG.unpack_from
    table = text.v4
    last_family = -1
    last_src = last_dst = None
    local = peer = ""
    for first, stop, step in _inet_runs(buffer, end, counts):
        for start in range(first, stop, step):
            family, state, timer, retrans, sport, dport, src, dst, ifindex, cookie, expires, rqueue, wqueue, uid, inode = unpack(buffer, start)
            if family != last_family:
                if family == c.AF_INET:
                    table = text.v4
                elif family == c.AF_INET6:
                    table = text.v6
                else:
                    counts.malformed += 1
                    continue
                last_family = family
                last_src = last_dst = None
            # A dump lists many sockets of one local address (and peers of
            # one): the text is looked up only when the bytes change, as
            # the compiled twin does.
            if src != last_src:
                local = table.get(src) or text(family, src)
                last_src = src
            if dst != last_dst:
                peer = table.get(dst) or text(family, dst)
                last_dst = dst
            append(_new_inet(InetSocket, (
                family, protocol, state, local, (sport & 0xFF) << 8 | sport >> 8, peer, (dport & 0xFF) << 8 | dport >> 8,
                rqueue, wqueue, inode, uid, ifindex, cookie, timer, retrans, expires, None,
            )))  # fmt: skip
    return out


_pure_decode_inet_chunk = decode_inet_chunk
# The compiled twin (aionlmmap/_speedups_sockdiag.pxi) takes the name when
# the compiled core is in use and was built with it (a build older than the
# twin lacks it: then the pure function stays).
if _speedups is not None and hasattr(_speedups, "decode_inet_chunk"):
    decode_inet_chunk = _speedups.decode_inet_chunk  # type: ignore[assignment]  # noqa: F811


def inet_chunk_json(buffer: Any, end: int, protocol: int, counts: DecodeCounts, text: AddressText) -> tuple[bytes, bytes]:
    """The sockets of a dump chunk (``buffer[:end]``) as ``aionlmmap dump
    sockets --json`` writes them, IPv4 and IPv6 apart: for each family, the
    sockets' compact JSON texts (what ``json.dumps(sock.to_json(),
    separators=(",", ":"))`` gives) joined by commas, UTF-8. Equal to
    ``",".join(json_texts(decode_inet_chunk(...)))`` of each family's
    sockets, with the same counts and address cache, without an InetSocket
    per socket: the one-shot command only prints them. Two texts because
    a TCPDIAG_GETSOCK dump interleaves the families and the command lists
    IPv4 before IPv6, as ss does.

    The walk is :func:`decode_inet_chunk`'s; a socket's text is its
    (protocol, state, family) template filled with the nine values that
    vary, then ifindex and the timer's keys where set, as ``to_json`` adds
    them (the kernel sets a timer on sockets with data in flight or in
    TIME-WAIT, and ifindex on sockets bound to a device)."""
    v4_texts: list[str] = []
    v6_texts: list[str] = []
    unpack = _MSG.unpack_from
    texts, table, template = v4_texts, text.v4, ""
    last_key = last_family = -1
    last_src = last_dst = None
    local = peer = ""
    for first, stop, step in _inet_runs(buffer, end, counts):
        for start in range(first, stop, step):
            family, state, timer, retrans, sport, dport, src, dst, ifindex, cookie, expires, rqueue, wqueue, uid, inode = unpack(buffer, start)
            # a dump comes in runs of one state and family: their list,
            # address cache and template change only at a run's edge
            key = state << 8 | family
            if key != last_key:
                if family == c.AF_INET:
                    texts, table = v4_texts, text.v4
                elif family == c.AF_INET6:
                    texts, table = v6_texts, text.v6
                else:
                    counts.malformed += 1
                    continue
                template = closed_template(protocol, state, family)
                last_key = key
                if family != last_family:
                    last_family = family
                    last_src = last_dst = None
            if src != last_src:  # as decode_inet_chunk: a text per change of bytes
                local = table.get(src) or text(family, src)
                last_src = src
            if dst != last_dst:
                peer = table.get(dst) or text(family, dst)
                last_dst = dst
            values = (rqueue, wqueue, local, (sport & 0xFF) << 8 | sport >> 8, peer, (dport & 0xFF) << 8 | dport >> 8, inode, uid, cookie)
            if not (ifindex or timer):
                texts.append(template % values)
                continue
            item = open_template(protocol, state, family) % values
            if ifindex:
                item += JSON_IFINDEX % ifindex
            if timer:
                item += JSON_TIMER % (timer, expires, retrans)
            texts.append(item + "}")
    return ",".join(v4_texts).encode(), ",".join(v6_texts).encode()


_pure_inet_chunk_json = inet_chunk_json
if _speedups is not None and hasattr(_speedups, "inet_chunk_json"):
    inet_chunk_json = _speedups.inet_chunk_json  # type: ignore[assignment]  # noqa: F811


def decode_unix(buffer: Any, start: int, end: int, counts: DecodeCounts) -> UnixSocket:
    """One unix_diag_msg as a :class:`UnixSocket`."""
    from .unix_socket import UnixSocket  # attrs only for unix dumps

    if end - start < _UNIX_MSG.size:
        raise DecodeError(f"unix_diag_msg of {end - start} bytes is shorter than its 16-byte header")
    _family, sock_type, state, inode, cookie = _UNIX_MSG.unpack_from(buffer, start)
    path = None
    peer = 0
    recv_q = send_q = 0
    uid = None
    pending = None
    extensions: dict[str, Any] = {}
    for attr_type, value_start, value_end in iter_attributes(buffer, start + _UNIX_MSG.size, end):
        size = value_end - value_start
        if attr_type == c.UNIX_DIAG_NAME:
            raw = bytes(buffer[value_start:value_end])
            # an abstract name starts with NUL; ss shows it with "@"
            path = "@" + raw[1:].decode("utf-8", "replace") if raw[:1] == b"\0" else raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif attr_type == c.UNIX_DIAG_PEER and size >= 4:
            peer = _U32(buffer, value_start)[0]
        elif attr_type == c.UNIX_DIAG_RQLEN and size >= 8:
            recv_q, send_q = struct.unpack_from("=II", buffer, value_start)
        elif attr_type == c.UNIX_DIAG_UID and size >= 4:
            uid = _U32(buffer, value_start)[0]
        elif attr_type == c.UNIX_DIAG_ICONS:
            pending = struct.unpack_from(f"={size // 4}I", buffer, value_start)
        elif attr_type == c.UNIX_DIAG_MEMINFO:
            count = min(size // 4, len(c.SK_MEMINFO_NAMES))
            extensions["skmeminfo"] = dict(zip(c.SK_MEMINFO_NAMES, struct.unpack_from(f"={count}I", buffer, value_start)))
        elif attr_type == c.UNIX_DIAG_SHUTDOWN and size >= 1:
            extensions["shutdown"] = buffer[value_start]
        elif attr_type == c.UNIX_DIAG_VFS and size >= 8:
            extensions["vfs_inode"], extensions["vfs_dev"] = struct.unpack_from("=II", buffer, value_start)
        else:
            counts.unknown_attributes += 1
    return UnixSocket(sock_type, state, inode, path, peer, recv_q, send_q, cookie, uid, pending, extensions or None)
