"""What ``ip -s link`` and ``ip -d link`` add to a link: :class:`LinkStats`
(IFLA_STATS64) and :class:`LinkDetails` (promiscuity, MTU bounds, linkinfo
kind, queue and GSO/TSO/GRO limits, IPv6 address generation mode).

Pure: imports neither asyncio nor socket.

``LinkStats.to_json(level)`` is ``__print_link_stats()``'s JSON object
(level 2 = ``ip -s -s``); ``LinkDetails.items()`` the keys
``print_linkinfo()`` prints under ``show_details``, in its order, as the
installed iproute2 (6.1) prints them. Kind-specific ``info_data`` (a
bridge's forward_delay, a vxlan's id...) is not decoded: see docs/rtnl.md.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ..attributes import parse_attributes

__all__ = ["LinkStats", "LinkDetails", "decode_stats64", "decode_details", "IFLA_STATS64", "IFLA_AF_SPEC", "IFLA_PROP_LIST"]

IFLA_STATS64 = 23
IFLA_AF_SPEC = 26
IFLA_PROMISCUITY = 30
IFLA_NUM_TX_QUEUES = 31
IFLA_NUM_RX_QUEUES = 32
IFLA_CARRIER_CHANGES = 35
IFLA_PROTO_DOWN = 39
IFLA_GSO_MAX_SEGS = 40
IFLA_GSO_MAX_SIZE = 41
IFLA_MIN_MTU = 50
IFLA_MAX_MTU = 51
IFLA_PROP_LIST = 52
IFLA_ALT_IFNAME = 53
IFLA_PERM_ADDRESS = 54
IFLA_GRO_MAX_SIZE = 58
IFLA_TSO_MAX_SIZE = 59
IFLA_TSO_MAX_SEGS = 60
IFLA_ALLMULTI = 61
IFLA_INFO_KIND = 1
IFLA_INFO_SLAVE_KIND = 4
AF_INET6 = 10
IFLA_INET6_ADDR_GEN_MODE = 8
#: IN6_ADDR_GEN_MODE_* names (print_af_spec())
ADDR_GEN_MODE_NAMES = {0: "eui64", 1: "none", 2: "stable_secret", 3: "random"}

#: struct rtnl_link_stats64, in the kernel's field order (24 u64 in every
#: kernel since 4.6; newer ones append rx_otherhost_dropped, not shown by ip 6.1)
STATS64_FIELDS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped",
    "multicast", "collisions", "rx_length_errors", "rx_over_errors", "rx_crc_errors", "rx_frame_errors",
    "rx_fifo_errors", "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed", "rx_nohandler",
)  # fmt: skip
_STATS64 = struct.Struct(f"={len(STATS64_FIELDS)}Q")
_U32 = struct.Struct("=I")


@attrs.frozen
class LinkStats:
    """A link's counters (struct rtnl_link_stats64), named as the kernel names them.

    >>> stats = LinkStats(rx_bytes=1086, rx_packets=13)
    >>> stats.to_json()["rx"]["bytes"]
    1086
    """

    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    multicast: int = 0
    collisions: int = 0
    rx_length_errors: int = 0
    rx_over_errors: int = 0
    rx_crc_errors: int = 0
    rx_frame_errors: int = 0
    rx_fifo_errors: int = 0
    rx_missed_errors: int = 0
    tx_aborted_errors: int = 0
    tx_carrier_errors: int = 0
    tx_fifo_errors: int = 0
    tx_heartbeat_errors: int = 0
    tx_window_errors: int = 0
    rx_compressed: int = 0
    tx_compressed: int = 0
    rx_nohandler: int = 0
    carrier_changes: int | None = None  #: IFLA_CARRIER_CHANGES (shown with ``-s -s``)

    def to_json(self, level: int = 1) -> dict[str, Any]:
        """``{"rx": {...}, "tx": {...}}`` as ``ip -j -s`` (level 2: ``-s -s``) prints it."""
        rx: dict[str, Any] = {"bytes": self.rx_bytes, "packets": self.rx_packets, "errors": self.rx_errors,
                              "dropped": self.rx_dropped, "over_errors": self.rx_over_errors, "multicast": self.multicast}  # fmt: skip
        if self.rx_compressed:
            rx["compressed"] = self.rx_compressed
        if level > 1:
            rx.update(length_errors=self.rx_length_errors, crc_errors=self.rx_crc_errors, frame_errors=self.rx_frame_errors,
                      fifo_errors=self.rx_fifo_errors, missed_errors=self.rx_missed_errors)  # fmt: skip
            if self.rx_nohandler:
                rx["nohandler"] = self.rx_nohandler
        tx: dict[str, Any] = {"bytes": self.tx_bytes, "packets": self.tx_packets, "errors": self.tx_errors,
                              "dropped": self.tx_dropped, "carrier_errors": self.tx_carrier_errors, "collisions": self.collisions}  # fmt: skip
        if self.tx_compressed:
            tx["compressed"] = self.tx_compressed
        if level > 1:
            tx.update(aborted_errors=self.tx_aborted_errors, fifo_errors=self.tx_fifo_errors, window_errors=self.tx_window_errors,
                      heartbeat_errors=self.tx_heartbeat_errors)  # fmt: skip
            if self.carrier_changes is not None:
                tx["carrier_changes"] = self.carrier_changes
        return {"rx": rx, "tx": tx}


@attrs.frozen
class LinkDetails:
    """What ``ip -d link`` shows beyond ``ip link`` (None: not sent by the kernel)."""

    promiscuity: int | None = None
    allmulti: int | None = None
    min_mtu: int | None = None
    max_mtu: int | None = None
    info_kind: str | None = None  #: IFLA_INFO_KIND ("veth", "bridge"...)
    info_slave_kind: str | None = None  #: IFLA_INFO_SLAVE_KIND: the master's kind for a port ("bridge")
    has_linkinfo: bool = False
    addr_gen_mode: int | None = None  #: IFLA_INET6_ADDR_GEN_MODE
    num_tx_queues: int | None = None
    num_rx_queues: int | None = None
    gso_max_size: int | None = None
    gso_max_segs: int | None = None
    tso_max_size: int | None = None
    tso_max_segs: int | None = None
    gro_max_size: int | None = None

    def items(self, with_af_spec: bool = True) -> list[tuple[str, Any]]:
        """(key, value) pairs in print_linkinfo()'s order; ``with_af_spec``:
        the IPv6 address generation mode, which only ``ip link`` prints."""
        out: list[tuple[str, Any]] = []
        for key in ("promiscuity", "allmulti", "min_mtu", "max_mtu"):
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        if self.has_linkinfo:
            info: dict[str, Any] = {}
            if self.info_kind is not None:
                info["info_kind"] = self.info_kind
            if self.info_slave_kind is not None:
                info["info_slave_kind"] = self.info_slave_kind
            out.append(("linkinfo", info))
        if with_af_spec and self.addr_gen_mode is not None:
            out.append(("inet6_addr_gen_mode", ADDR_GEN_MODE_NAMES.get(self.addr_gen_mode, str(self.addr_gen_mode))))
        for key in ("num_tx_queues", "num_rx_queues", "gso_max_size", "gso_max_segs", "tso_max_size", "tso_max_segs", "gro_max_size"):
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        return out


def decode_stats64(buffer: Any, table: dict[int, tuple[int, int]]) -> LinkStats | None:
    span = table.get(IFLA_STATS64)
    if span is None or span[1] - span[0] < _STATS64.size:
        return None
    values = dict(zip(STATS64_FIELDS, _STATS64.unpack_from(buffer, span[0])))
    changes = _u32(buffer, table.get(IFLA_CARRIER_CHANGES))
    return LinkStats(**values, carrier_changes=changes)


def decode_altnames(buffer: Any, table: dict[int, tuple[int, int]]) -> tuple[str, ...]:
    """IFLA_PROP_LIST's IFLA_ALT_IFNAME members, in the kernel's order."""
    span = table.get(IFLA_PROP_LIST)
    if span is None:
        return ()
    names = []
    offset = span[0]
    while span[1] - offset >= 4:
        length, attr_type = struct.unpack_from("=HH", buffer, offset)
        if length < 4 or offset + length > span[1]:
            break
        if attr_type & 0x3FFF == IFLA_ALT_IFNAME:
            names.append(bytes(buffer[offset + 4 : offset + length]).split(b"\0", 1)[0].decode("utf-8", "replace"))
        offset += (length + 3) & ~3
    return tuple(names)


def decode_details(buffer: Any, table: dict[int, tuple[int, int]], linkinfo: dict[int, tuple[int, int]] | None) -> LinkDetails:
    get = table.get
    mode = None
    spec = get(IFLA_AF_SPEC)
    if spec is not None:
        inet6 = parse_attributes(buffer, spec[0], spec[1]).get(AF_INET6)
        if inet6 is not None:
            generation = parse_attributes(buffer, inet6[0], inet6[1]).get(IFLA_INET6_ADDR_GEN_MODE)
            if generation is not None and generation[1] > generation[0]:
                mode = buffer[generation[0]]
    info_kind = info_slave_kind = None
    if linkinfo is not None:
        kind = linkinfo.get(IFLA_INFO_KIND)
        slave = linkinfo.get(IFLA_INFO_SLAVE_KIND)
        info_kind = _string(buffer, kind) if kind is not None else None
        info_slave_kind = _string(buffer, slave) if slave is not None else None
    return LinkDetails(
        promiscuity=_u32(buffer, get(IFLA_PROMISCUITY)),
        allmulti=_u32(buffer, get(IFLA_ALLMULTI)),
        min_mtu=_u32(buffer, get(IFLA_MIN_MTU)),
        max_mtu=_u32(buffer, get(IFLA_MAX_MTU)),
        info_kind=info_kind,
        info_slave_kind=info_slave_kind,
        # print_linktype() opens "linkinfo" only when IFLA_INFO_KIND is there
        has_linkinfo=info_kind is not None,
        addr_gen_mode=mode,
        num_tx_queues=_u32(buffer, get(IFLA_NUM_TX_QUEUES)),
        num_rx_queues=_u32(buffer, get(IFLA_NUM_RX_QUEUES)),
        gso_max_size=_u32(buffer, get(IFLA_GSO_MAX_SIZE)),
        gso_max_segs=_u32(buffer, get(IFLA_GSO_MAX_SEGS)),
        tso_max_size=_u32(buffer, get(IFLA_TSO_MAX_SIZE)),
        tso_max_segs=_u32(buffer, get(IFLA_TSO_MAX_SEGS)),
        gro_max_size=_u32(buffer, get(IFLA_GRO_MAX_SIZE)),
    )


def _u32(buffer: Any, span: tuple[int, int] | None) -> int | None:
    if span is None or span[1] - span[0] < 4:
        return None
    return _U32.unpack_from(buffer, span[0])[0]  # type: ignore[no-any-return]


def _string(buffer: Any, span: tuple[int, int]) -> str:
    return bytes(buffer[span[0] : span[1]]).split(b"\0", 1)[0].decode("utf-8", "replace")
