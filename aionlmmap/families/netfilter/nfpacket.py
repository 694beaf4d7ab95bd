"""Packet fields that nfnetlink_queue and nfnetlink_log both report.

Pure: imports neither asyncio nor socket.

``nfqnl_build_packet_message`` and ``__build_packet_message`` (nfnetlink_log)
describe a packet with the same kinds of attributes under different numbers
(NFQA_* and NFULA_*): mark, interfaces, owner uid/gid, timestamp, hardware
address, conntrack info and the payload. :class:`PacketFields` decodes them
on access for both; each family says which number is which.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar, NamedTuple

from .nfnetlink import CT_INFO_NAMES, HOOK_NAMES

__all__ = ["PacketAttributeNumbers", "PacketFields"]

_BE32 = struct.Struct("!I")
#: struct nfqnl_msg_packet_timestamp / nfulnl_msg_packet_timestamp {__aligned_be64 sec, usec}
_TIMESTAMP = struct.Struct("!QQ")
#: struct nfqnl_msg_packet_hw / nfulnl_msg_packet_hw {__be16 hw_addrlen; __u16 pad; __u8 hw_addr[8]}
_HWADDR = struct.Struct("!H2x8s")


class PacketAttributeNumbers(NamedTuple):
    """Where a family keeps each shared field (its attribute numbers)."""

    payload: int
    mark: int
    indev: int
    outdev: int
    physindev: int
    physoutdev: int
    uid: int
    gid: int
    timestamp: int
    hwaddr: int
    ct_info: int


class PacketFields:
    """Mixin: the shared packet fields, decoded from the message on access.

    A subclass sets ``_NUMBERS`` and provides ``_message`` (the netlink
    message), ``hook_number`` and ``_attributes()`` (type -> value span in
    the message payload)."""

    __slots__ = ()
    _NUMBERS: ClassVar[PacketAttributeNumbers]
    _message: Any
    hook_number: int

    def _attributes(self) -> dict[int, tuple[int, int]]:
        raise NotImplementedError

    def _be32(self, attr_type: int) -> int | None:
        span = self._attributes().get(attr_type)
        if span is None or span[1] - span[0] < 4:
            return None
        return _BE32.unpack_from(self._message.payload, span[0])[0]  # type: ignore[no-any-return]

    @property
    def hook(self) -> str:
        """Hook name: "prerouting", "input", "forward", "output", "postrouting"."""
        return HOOK_NAMES.get(self.hook_number, str(self.hook_number))

    @property
    def payload(self) -> memoryview:
        """The packet from its network header on, up to the copy range (zero copy)."""
        span = self._attributes().get(self._NUMBERS.payload)
        if span is None:
            return memoryview(b"")
        return self._message.payload[span[0] : span[1]]  # type: ignore[no-any-return]

    @property
    def mark(self) -> int:
        """skb->mark (0 when unset)."""
        return self._be32(self._NUMBERS.mark) or 0

    @property
    def indev(self) -> int | None:
        """Input interface index (absent on output hooks)."""
        return self._be32(self._NUMBERS.indev)

    @property
    def outdev(self) -> int | None:
        return self._be32(self._NUMBERS.outdev)

    @property
    def physindev(self) -> int | None:
        """Bridge port the packet came in on (bridged traffic only)."""
        return self._be32(self._NUMBERS.physindev)

    @property
    def physoutdev(self) -> int | None:
        return self._be32(self._NUMBERS.physoutdev)

    @property
    def uid(self) -> int | None:
        """Owning socket's uid (locally generated packets, when asked for)."""
        return self._be32(self._NUMBERS.uid)

    @property
    def gid(self) -> int | None:
        return self._be32(self._NUMBERS.gid)

    @property
    def timestamp(self) -> float | None:
        """Receive time (seconds since the epoch), when the skb has one."""
        span = self._attributes().get(self._NUMBERS.timestamp)
        if span is None or span[1] - span[0] < _TIMESTAMP.size:
            return None
        seconds, microseconds = _TIMESTAMP.unpack_from(self._message.payload, span[0])
        return seconds + microseconds / 1e6  # type: ignore[no-any-return]

    @property
    def hwaddr(self) -> bytes | None:
        """Source link-layer address (input hooks)."""
        span = self._attributes().get(self._NUMBERS.hwaddr)
        if span is None or span[1] - span[0] < _HWADDR.size:
            return None
        length, address = _HWADDR.unpack_from(self._message.payload, span[0])
        return bytes(address[: min(length, 8)])

    @property
    def conntrack_state(self) -> str | None:
        """"new", "established", "related", ... (when the family reports it)."""
        value = self._be32(self._NUMBERS.ct_info)
        return None if value is None else CT_INFO_NAMES.get(value, str(value))
