"""nfnetlink_log: packets logged by netfilter (iptables ``-j NFLOG``, nft
``log group N``), read from a log group.

>>> async with nflog.open(5, netns="fw") as log:
...     async for entry in log:
...         print(entry.prefix, entry.hook, entry.indev, len(entry.payload))

Entries borrow their bytes from the RX frame (zero copy) and are valid until
the iterator moves on; ``entry.copy()`` keeps one. The kernel may pack
several entries into one datagram (``qthreshold`` > 1, flushed after
``flush_timeout``), ending it with NLMSG_DONE; they arrive one by one here.
A log group has one listener per namespace: binding a group someone else
holds fails with EBUSY.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import attrs

from ... import open as _open_ring  # aionlmmap.open
from ..._sys import NetnsSpec
from ...attributes import AttributeBuilder, parse_attributes
from ...constants import NETLINK_NETFILTER, NFNL_SUBSYS_ULOG, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from ...errors import DecodeError, NetlinkError
from ...frames import RingConfig
from ...message import Message
from .nfnetlink import encode_nfgenmsg
from .nfpacket import PacketAttributeNumbers, PacketFields

__all__ = ["open", "Log", "LogEntry", "LogStats", "decode_entry", "encode_config", "NFULNL_CFG_F_SEQ", "NFULNL_CFG_F_SEQ_GLOBAL",
           "NFULNL_CFG_F_CONNTRACK"]

# include/uapi/linux/netfilter/nfnetlink_log.h
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NFULA_PACKET_HDR, NFULA_MARK, NFULA_TIMESTAMP, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 1, 2, 3, 4, 5
NFULA_IFINDEX_PHYSINDEV, NFULA_IFINDEX_PHYSOUTDEV, NFULA_HWADDR, NFULA_PAYLOAD, NFULA_PREFIX = 6, 7, 8, 9, 10
NFULA_UID, NFULA_SEQ, NFULA_SEQ_GLOBAL, NFULA_GID, NFULA_HWTYPE, NFULA_HWHEADER, NFULA_HWLEN = 11, 12, 13, 14, 15, 16, 17
NFULA_CT, NFULA_CT_INFO, NFULA_VLAN, NFULA_L2HDR = 18, 19, 20, 21
NFULA_MAX_KNOWN = NFULA_L2HDR
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH, NFULA_CFG_FLAGS = 1, 2, 3, 4, 5, 6
NFULNL_COPY_NONE, NFULNL_COPY_META, NFULNL_COPY_PACKET = 0, 1, 2
NFULNL_CFG_F_SEQ = 0x1
NFULNL_CFG_F_SEQ_GLOBAL = 0x2
NFULNL_CFG_F_CONNTRACK = 0x4

_TYPE_PACKET = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET
_TYPE_CONFIG = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG
_PACKET_HDR = struct.Struct("!HB")  # struct nfulnl_msg_packet_hdr {__be16 hw_protocol; u8 hook; u8 pad}
_BE32 = struct.Struct("!I")


def encode_config(group: int, *, command: int | None = None, copy_mode: int | None = None, copy_range: int = 0xFFFF,
                  nlbufsiz: int | None = None, flush_timeout: float | None = None, qthreshold: int | None = None,
                  flags: int | None = None) -> Message:
    """NFULNL_MSG_CONFIG for ``group`` (``nfulnl_recv_config`` applies the
    command first, then the other settings)."""
    builder = AttributeBuilder()
    if command is not None:
        builder.add(NFULA_CFG_CMD, bytes((command,)))
    if copy_mode is not None:
        builder.add(NFULA_CFG_MODE, struct.pack("!IBx", copy_range, copy_mode))
    if nlbufsiz is not None:
        builder.add_be32(NFULA_CFG_NLBUFSIZ, nlbufsiz)
    if flush_timeout is not None:
        builder.add_be32(NFULA_CFG_TIMEOUT, max(0, round(flush_timeout * 100)))  # in 1/100 s
    if qthreshold is not None:
        builder.add_be32(NFULA_CFG_QTHRESH, qthreshold)
    if flags is not None:
        builder.add_be16(NFULA_CFG_FLAGS, flags)
    return Message(_TYPE_CONFIG, NLM_F_REQUEST, payload=encode_nfgenmsg(0, group) + builder.build())


class LogEntry(PacketFields):
    """One logged packet. Fields decode from the message on access."""

    _NUMBERS = PacketAttributeNumbers(
        payload=NFULA_PAYLOAD, mark=NFULA_MARK, indev=NFULA_IFINDEX_INDEV, outdev=NFULA_IFINDEX_OUTDEV,
        physindev=NFULA_IFINDEX_PHYSINDEV, physoutdev=NFULA_IFINDEX_PHYSOUTDEV, uid=NFULA_UID, gid=NFULA_GID,
        timestamp=NFULA_TIMESTAMP, hwaddr=NFULA_HWADDR, ct_info=NFULA_CT_INFO,
    )

    __slots__ = ("_message", "_table", "group", "hw_protocol", "hook_number")

    def __init__(self, message: Message, table: dict[int, tuple[int, int]], group: int, hw_protocol: int, hook: int) -> None:
        self._message = message
        self._table = table
        self.group = group  #: the log group it came from
        self.hw_protocol = hw_protocol  #: ethertype (0x0800 IPv4, 0x86dd IPv6)
        self.hook_number = hook

    def _attributes(self) -> dict[int, tuple[int, int]]:
        return self._table



    @property
    def prefix(self) -> str:
        """The rule's log prefix ("" when it has none)."""
        span = self._table.get(NFULA_PREFIX)
        if span is None:
            return ""
        return bytes(self._message.payload[span[0] : span[1]]).split(b"\0", 1)[0].decode("utf-8", "replace")









    @property
    def seq(self) -> int | None:
        """Per-group sequence number (``flags=NFULNL_CFG_F_SEQ``)."""
        return self._be32(NFULA_SEQ)

    @property
    def seq_global(self) -> int | None:
        return self._be32(NFULA_SEQ_GLOBAL)




    def copy(self) -> LogEntry:
        """A copy that outlives the RX frame."""
        return LogEntry(self._message.copy(), self._table, self.group, self.hw_protocol, self.hook_number)

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "prefix": self.prefix, "hook": self.hook, "hw_protocol": self.hw_protocol,
                "indev": self.indev, "outdev": self.outdev, "mark": self.mark, "uid": self.uid, "gid": self.gid,
                "payload_length": len(self.payload)}

    def __repr__(self) -> str:
        return f"<LogEntry group={self.group} prefix={self.prefix!r} hook={self.hook} length={len(self.payload)}>"


def decode_entry(message: Message) -> LogEntry:
    """Decode an NFULNL_MSG_PACKET; :class:`DecodeError` if it is malformed."""
    payload = message.payload
    if len(payload) < 4:
        raise DecodeError(f"nflog message of {len(payload)} bytes has no nfgenmsg")
    group = int.from_bytes(payload[2:4], "big")
    table = parse_attributes(payload, 4)
    span = table.get(NFULA_PACKET_HDR)
    if span is None or span[1] - span[0] < _PACKET_HDR.size:
        raise DecodeError("nflog message without a valid NFULA_PACKET_HDR")
    hw_protocol, hook = _PACKET_HDR.unpack_from(payload, span[0])
    return LogEntry(message, table, group, hw_protocol, hook)


@attrs.define
class LogStats:
    entries: int = 0
    malformed: int = 0  #: messages that could not be decoded, skipped
    unknown_attributes: int = 0  #: attributes newer than this module, ignored
    other_messages: int = 0
    overruns: int = 0  #: times the kernel dropped entries (socket full); see docs


class Log:
    """A bound nflog group. Use :func:`open`."""

    def __init__(self, ring: Any, group: int, config: Message) -> None:
        self.ring = ring
        self.group = group
        self.stats = LogStats()
        self._config = config

    async def __aenter__(self) -> Log:
        await self.ring.__aenter__()
        try:
            await self.ring.request(self._config)
        except NetlinkError as exc:
            await self.ring.aclose()
            if exc.errno in (1, 16):
                # nfulnl_recv_config: EPERM when another portid owns the group's
                # instance (or without CAP_NET_ADMIN), EBUSY on a double bind.
                raise NetlinkError(exc.errno, f"nflog group {self.group} is already bound by another socket "
                                   "(one listener per group and namespace), or this process lacks CAP_NET_ADMIN",
                                   exc.extack_offset) from None
            raise
        except BaseException:
            await self.ring.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ring.aclose()

    def __aiter__(self) -> AsyncIterator[LogEntry]:
        # The ring's own iterator, decoding each message while its frame is
        # pinned: one generator layer per entry, and a new `async for` goes
        # on where the last one stopped.
        return self.ring.iterate(self._entry_of, on_overrun=self._on_overrun)  # type: ignore[no-any-return]

    def _on_overrun(self) -> None:
        # Entries were lost (socket buffer full); logging goes on.
        self.stats.overruns += 1

    def _entry_of(self, message: Message) -> LogEntry | None:
        """The LogEntry in ``message``, or None (counted) if it holds none."""
        stats = self.stats
        if message[0] != _TYPE_PACKET:
            if message[0] not in (NLMSG_DONE, NLMSG_ERROR):
                stats.other_messages += 1
            return None
        try:
            entry = decode_entry(message)
        except (DecodeError, struct.error):
            stats.malformed += 1
            return None
        if entry.group != self.group:
            stats.other_messages += 1
            return None
        stats.entries += 1
        stats.unknown_attributes += sum(1 for attr_type in entry._table if attr_type > NFULA_MAX_KNOWN)
        return entry


def open(
    group: int,
    *,
    copy_range: int = 0xFFFF,
    copy_mode: int = NFULNL_COPY_PACKET,
    flags: int = 0,
    qthreshold: int | None = None,
    flush_timeout: float | None = None,
    nlbufsiz: int | None = None,
    netns: NetnsSpec = None,
    rcvbuf: int | None = 4 * 1024 * 1024,
    rx: RingConfig | None = None,
    backend: str = "auto",
    accept_foreign: bool = False,
) -> Log:
    """Bind nflog ``group`` (iptables ``-j NFLOG --nflog-group N``, nft ``log group N``).

    ``async with nflog.open(5, netns="fw") as log: async for entry in log: ...``

    Args:
        copy_range: bytes of each packet to copy; ``copy_mode``: NFULNL_COPY_PACKET or _META.
        flags: NFULNL_CFG_F_SEQ, NFULNL_CFG_F_SEQ_GLOBAL, NFULNL_CFG_F_CONNTRACK.
        qthreshold: entries the kernel packs into one datagram before sending
            (with ``flush_timeout`` seconds as the upper bound on the wait).
        nlbufsiz: the kernel's per-instance buffer for packing entries.
    """
    if not 0 <= group <= 0xFFFF:
        raise ValueError(f"nflog group {group} out of range 0..65535")
    config = encode_config(group, command=NFULNL_CFG_CMD_BIND, copy_mode=copy_mode, copy_range=copy_range, nlbufsiz=nlbufsiz,
                           flush_timeout=flush_timeout, qthreshold=qthreshold, flags=flags)
    # skip_is_safe: nflog entries all take the ring path
    ring = _open_ring(NETLINK_NETFILTER, netns=netns, rx=rx, rcvbuf=rcvbuf, backend=backend,  # type: ignore[arg-type]
                      accept_foreign=accept_foreign, skip_is_safe=True)
    return Log(ring, group, config)
