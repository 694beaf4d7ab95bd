"""What ``ip -s link`` and ``ip -d link`` add to a link: :class:`LinkStats`
(IFLA_STATS64) and :class:`LinkDetails` (promiscuity, MTU bounds, linkinfo
kind, queue and GSO/TSO/GRO limits, IPv6 address generation mode).

Pure: imports neither asyncio nor socket.

``LinkStats.to_json(level)`` is ``__print_link_stats()``'s JSON object
(level 2 = ``ip -s -s``); ``LinkDetails.items()`` the keys
``print_linkinfo()`` prints under ``show_details``, in its order, as the
installed iproute2 (6.1) prints them. Of the kind-specific options
(``info_data``), a bridge's (:func:`bridge_info_data`) and a vxlan's
(:func:`vxlan_info_data`) are decoded, and a bridge port's
``info_slave_data`` (:func:`bridge_port_info_data`); other kinds' are not.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import attrs

from ...attributes import parse_attributes

__all__ = ["LinkStats", "LinkDetails", "decode_stats64", "stats64_at", "STATS64_FIELDS", "decode_details", "IFLA_STATS64", "IFLA_AF_SPEC", "IFLA_PROP_LIST"]

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
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
AF_INET6 = 10
IFLA_INET6_ADDR_GEN_MODE = 8
#: IN6_ADDR_GEN_MODE_* names (print_af_spec())
ADDR_GEN_MODE_NAMES = {0: "eui64", 1: "none", 2: "stable_secret", 3: "random"}

#: struct rtnl_link_stats64, in the kernel's field order (<linux/if_link.h>).
#: Kernels before 4.6 stop after tx_compressed (23 u64, no rx_nohandler),
#: before 5.19 after rx_nohandler (no rx_otherhost_dropped, which ip 6.1 does
#: not show): fields a kernel lacks decode as 0.
STATS64_FIELDS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped",
    "multicast", "collisions", "rx_length_errors", "rx_over_errors", "rx_crc_errors", "rx_frame_errors",
    "rx_fifo_errors", "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed", "rx_nohandler",
    "rx_otherhost_dropped",
)  # fmt: skip
_STATS64 = struct.Struct(f"={len(STATS64_FIELDS)}Q")
_STATS64_OLDEST = 23  #: fields of the shortest struct (Linux < 4.6)
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
    rx_otherhost_dropped: int = 0
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
    #: IFLA_INFO_DATA as ``ip -d`` prints it, for the kinds decoded here
    #: (bridge); other kinds' options are not decoded (None)
    info_data: tuple[tuple[str, Any], ...] | None = None
    #: IFLA_INFO_SLAVE_DATA as ``ip -d`` prints it (a bridge port's options), or None
    info_slave_data: tuple[tuple[str, Any], ...] | None = None
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
            if self.info_data is not None:
                info["info_data"] = {key: f"if{value}" if key == "link" and isinstance(value, int) else value for key, value in self.info_data}
            if self.info_slave_kind is not None:
                info["info_slave_kind"] = self.info_slave_kind
            if self.info_slave_data is not None:
                info["info_slave_data"] = {key: f"if{value}" if key == "backup_port" and isinstance(value, int) else value
                                           for key, value in self.info_slave_data}  # fmt: skip
            out.append(("linkinfo", info))
        if with_af_spec and self.addr_gen_mode is not None:
            out.append(("inet6_addr_gen_mode", ADDR_GEN_MODE_NAMES.get(self.addr_gen_mode, str(self.addr_gen_mode))))
        for key in ("num_tx_queues", "num_rx_queues", "gso_max_size", "gso_max_segs", "tso_max_size", "tso_max_segs", "gro_max_size"):
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        return out


def stats64_at(buffer: Any, first: int, size: int, carrier_changes: int | None = None) -> LinkStats | None:
    """The struct rtnl_link_stats64 of ``size`` bytes at ``first`` (IFLA_STATS64
    or RTM_GETSTATS' IFLA_STATS_LINK_64); an older kernel's shorter struct
    gives zeros for what it lacks. None if ``size`` is no such struct."""
    if size >= _STATS64.size:
        return LinkStats(*_STATS64.unpack_from(buffer, first), carrier_changes=carrier_changes)  # type: ignore[arg-type]
    if size % 8 or size < 8 * _STATS64_OLDEST:
        return None
    return LinkStats(*struct.unpack_from(f"={size // 8}Q", buffer, first), carrier_changes=carrier_changes)  # type: ignore[arg-type]


def decode_stats64(buffer: Any, table: dict[int, tuple[int, int]]) -> LinkStats | None:
    span = table.get(IFLA_STATS64)
    if span is None:
        return None
    return stats64_at(buffer, span[0], span[1] - span[0], _u32(buffer, table.get(IFLA_CARRIER_CHANGES)))


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


def decode_details(
    buffer: Any, table: dict[int, tuple[int, int]], linkinfo: dict[int, tuple[int, int]] | None, names: dict[int, str] | None = None
) -> LinkDetails:
    get = table.get
    mode = None
    spec = get(IFLA_AF_SPEC)
    if spec is not None:
        inet6 = parse_attributes(buffer, spec[0], spec[1]).get(AF_INET6)
        if inet6 is not None:
            generation = parse_attributes(buffer, inet6[0], inet6[1]).get(IFLA_INET6_ADDR_GEN_MODE)
            if generation is not None and generation[1] > generation[0]:
                mode = buffer[generation[0]]
    info_kind = info_slave_kind = info_data = info_slave_data = None
    if linkinfo is not None:
        kind = linkinfo.get(IFLA_INFO_KIND)
        slave = linkinfo.get(IFLA_INFO_SLAVE_KIND)
        info_kind = _string(buffer, kind) if kind is not None else None
        info_slave_kind = _string(buffer, slave) if slave is not None else None
        data = linkinfo.get(IFLA_INFO_DATA)
        if info_kind == "bridge" and data is not None:
            info_data = bridge_info_data(buffer, parse_attributes(buffer, data[0], data[1]))
        elif info_kind == "vxlan" and data is not None:
            info_data = vxlan_info_data(buffer, parse_attributes(buffer, data[0], data[1]), names)
        slave_data = linkinfo.get(IFLA_INFO_SLAVE_DATA)
        if info_slave_kind == "bridge" and slave_data is not None:
            info_slave_data = bridge_port_info_data(buffer, parse_attributes(buffer, slave_data[0], slave_data[1]), names)
    return LinkDetails(
        promiscuity=_u32(buffer, get(IFLA_PROMISCUITY)),
        allmulti=_u32(buffer, get(IFLA_ALLMULTI)),
        min_mtu=_u32(buffer, get(IFLA_MIN_MTU)),
        max_mtu=_u32(buffer, get(IFLA_MAX_MTU)),
        info_kind=info_kind,
        info_slave_kind=info_slave_kind,
        # print_linktype() opens "linkinfo" only when IFLA_INFO_KIND is there
        has_linkinfo=info_kind is not None,
        info_data=info_data,
        info_slave_data=info_slave_data,
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


#: bridge_print_opt() (iproute2 6.1): (IFLA_BR_* number, JSON key, how the
#: value is read and shown), in print order. "u8/u16/u32/u64": the number;
#: "timer": clock ticks as seconds with two decimals (__jiffies_to_tv +
#: print_tv); "id": struct ifla_bridge_id as "8000.aa:b:..."; "hex":
#: print_0xhex ("0" for zero); "mac": a link-layer address; "proto": a
#: VLAN protocol name; "boolopt": IFLA_BR_MULTI_BOOLOPT's two booleans.
_BRIDGE_OPTIONS = (
    (1, "forward_delay", "u32"), (2, "hello_time", "u32"), (3, "max_age", "u32"), (4, "ageing_time", "u32"),
    (5, "stp_state", "u32"), (6, "priority", "u16"), (7, "vlan_filtering", "u8"), (8, "vlan_protocol", "proto"),
    (11, "bridge_id", "id"), (10, "root_id", "id"), (12, "root_port", "u16"), (13, "root_path_cost", "u32"),
    (14, "topology_change", "u8"), (15, "topology_change_detected", "u8"), (16, "hello_timer", "timer"),
    (17, "tcn_timer", "timer"), (18, "topology_change_timer", "timer"), (19, "gc_timer", "timer"),
    (39, "vlan_default_pvid", "u16"), (41, "vlan_stats_enabled", "u8"), (45, "vlan_stats_per_port", "u8"),
    (9, "group_fwd_mask", "hex"), (20, "group_addr", "mac"), (23, "mcast_snooping", "u8"), (46, None, "boolopt"),
    (22, "mcast_router", "u8"), (24, "mcast_query_use_ifaddr", "u8"), (25, "mcast_querier", "u8"),
    (26, "mcast_hash_elasticity", "u32"), (27, "mcast_hash_max", "u32"), (28, "mcast_last_member_cnt", "u32"),
    (29, "mcast_startup_query_cnt", "u32"), (30, "mcast_last_member_intvl", "u64"), (31, "mcast_membership_intvl", "u64"),
    (32, "mcast_querier_intvl", "u64"), (33, "mcast_query_intvl", "u64"), (34, "mcast_query_response_intvl", "u64"),
    (35, "mcast_startup_query_intvl", "u64"), (42, "mcast_stats_enabled", "u8"), (43, "mcast_igmp_version", "u8"),
    (44, "mcast_mld_version", "u8"), (36, "nf_call_iptables", "u8"), (37, "nf_call_ip6tables", "u8"),
    (38, "nf_call_arptables", "u8"),
)  # fmt: skip
_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "timer": 8, "hex": 2, "bool": 1, "hex16": 2}


def bridge_info_data(buffer: Any, table: dict[int, tuple[int, int]], options: tuple[tuple[int, Any, str], ...] = _BRIDGE_OPTIONS) -> tuple[tuple[str, Any], ...]:
    """A bridge's IFLA_INFO_DATA as ``ip -j -d link`` prints it."""
    out: list[tuple[str, Any]] = []
    for number, key, how in options:
        span = table.get(number)
        if span is None:
            continue
        raw = bytes(buffer[span[0] : span[1]])
        if how in _SIZES:
            if len(raw) < _SIZES[how]:
                continue
            value = int.from_bytes(raw[: _SIZES[how]], "little")
            if how == "timer":
                out.append((key, round(value / 100, 2)))  # type: ignore[arg-type]
            elif how == "bool":
                out.append((key, bool(value)))  # type: ignore[arg-type]
            elif how == "hex16":
                out.append((key, f"{value:#x}"))  # type: ignore[arg-type]
            elif how == "hex":
                out.append((key, f"{value:#x}" if value else "0"))  # type: ignore[arg-type]
            else:
                out.append((key, value))  # type: ignore[arg-type]
        elif how == "id" and len(raw) >= 8:
            # br_dump_bridge_id(): the address through ether_ntoa_r(), which
            # writes each byte without a leading zero ("f2:3:83:...")
            out.append((key, f"{raw[0]:02x}{raw[1]:02x}." + ":".join(f"{octet:x}" for octet in raw[2:8])))  # type: ignore[arg-type]
        elif how == "mac":
            out.append((key, raw.hex(":")))  # type: ignore[arg-type]
        elif how == "proto" and len(raw) >= 2:
            protocol = int.from_bytes(raw[:2], "big")
            out.append((key, {0x8100: "802.1Q", 0x88A8: "802.1ad"}.get(protocol, f"{protocol:#x}")))  # type: ignore[arg-type]
        elif how == "boolopt" and len(raw) >= 8:
            value, mask = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:8], "little")
            # BR_BOOLOPT_NO_LL_LEARN (bit 0), BR_BOOLOPT_MCAST_VLAN_SNOOPING (bit 1)
            for bit, name in ((0, "no_linklocal_learn"), (1, "mcast_vlan_snooping")):
                if mask >> bit & 1:
                    out.append((name, value >> bit & 1))
    return tuple(out)


_VXLAN_DF = {0: "unset", 1: "set", 2: "inherit"}


def vxlan_info_data(buffer: Any, table: dict[int, tuple[int, int]], names: dict[int, str] | None = None) -> tuple[tuple[str, Any], ...]:
    """A vxlan's IFLA_INFO_DATA as ``ip -j -d link`` (vxlan_print_opt(),
    iproute2 6.1) prints it. ``names``: interface names for ``link``."""

    def raw(number: int) -> bytes | None:
        span = table.get(number)
        return None if span is None else bytes(buffer[span[0] : span[1]])

    def number(attr: int, size: int, order: str = "little") -> int | None:
        value = raw(attr)
        return None if value is None or len(value) < size else int.from_bytes(value[:size], order)  # type: ignore[arg-type]

    out: list[tuple[str, Any]] = []
    if number(25, 1):  # IFLA_VXLAN_COLLECT_METADATA
        out.append(("external", True))
    vni = number(1, 4)
    if vni is not None:
        out.append(("id", vni))
    group, group6 = raw(2), raw(16)
    if group is not None and len(group) == 4 and group != bytes(4):
        out.append(("group" if 224 <= group[0] <= 239 else "remote", ".".join(str(octet) for octet in group)))
    elif group6 is not None and len(group6) == 16 and group6 != bytes(16):
        out.append(("group6" if group6[0] == 0xFF else "remote6", ipaddress.IPv6Address(group6).compressed))
    local, local6 = raw(4), raw(17)
    if local is not None and len(local) == 4 and local != bytes(4):
        out.append(("local", ".".join(str(octet) for octet in local)))
    elif local6 is not None and len(local6) == 16 and local6 != bytes(16):
        out.append(("local6", ipaddress.IPv6Address(local6).compressed))
    link = number(3, 4)
    if link:
        # the index until resolve_link() names it (ll_index_to_name: "ifN" if unknown)
        out.append(("link", (names or {}).get(link) or link))
    ports = raw(10)
    if ports is not None and len(ports) >= 4:
        out.append(("port_range", {"low": int.from_bytes(ports[:2], "big"), "high": int.from_bytes(ports[2:4], "big")}))
    port = number(15, 2, "big")
    if port is not None:
        out.append(("port", port))
    learning = number(7, 1)
    if learning is not None:
        out.append(("learning", bool(learning)))
    for attr, key in ((11, "proxy"), (12, "rsc"), (13, "l2miss"), (14, "l3miss")):
        if number(attr, 1):
            out.append((key, True))
    tos = number(6, 1)
    if tos:
        out.append(("tos", f"{tos:#x}"))
    if number(28, 1):  # IFLA_VXLAN_TTL_INHERIT
        out.append(("ttl", "auto"))
    else:
        ttl = number(5, 1)
        if ttl is not None:
            out.append(("ttl", ttl))
    # iproute2's vxlan_print_opt prints df before the (IPv6-only) flow label.
    df = number(29, 1)
    if df is not None:
        out.append(("df", _VXLAN_DF.get(df, str(df))))
    label = number(26, 4, "big")
    if label:
        out.append(("label", f"{label:#x}"))
    ageing = number(8, 4)
    if ageing is not None:
        out.append(("ageing", ageing))
    limit = number(9, 4)
    if limit:
        out.append(("limit", limit))
    for attr, key in ((18, "udp_csum"), (19, "udp_zero_csum6_tx"), (20, "udp_zero_csum6_rx")):
        value = number(attr, 1)
        if value is not None:
            out.append((key, bool(value)))
    for attr, key in ((21, "remcsum_tx"), (22, "remcsum_rx")):
        if number(attr, 1):
            out.append((key, True))
    for attr, key in ((23, "gbp"), (27, "gpe")):
        if attr in table:
            out.append((key, True))
    return tuple(out)


_PORT_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
#: bridge_slave_print_opt() (iproute2 6.1): IFLA_BRPORT_* in print order;
#: "bool" a u8 shown as true/false, "hex16" a u16 always written "0x..",
#: "state" the STP port state's name. Newer attributes (mcast_eht_hosts,
#: mab...) are not printed by 6.1 and left out here too.
_BRIDGE_PORT_OPTIONS = (
    (1, "state", "state"), (2, "priority", "u16"), (3, "cost", "u32"), (4, "hairpin", "bool"), (5, "guard", "bool"),
    (6, "root_block", "bool"), (7, "fastleave", "bool"), (8, "learning", "bool"), (9, "flood", "bool"), (17, "id", "hex16"),
    (18, "no", "hex16"), (15, "designated_port", "u16"), (16, "designated_cost", "u16"), (14, "bridge_id", "id"), (13, "root_id", "id"),
    (23, "hold_timer", "timer"), (21, "message_age_timer", "timer"), (22, "forward_delay_timer", "timer"),
    (19, "topology_change_ack", "u8"), (20, "config_pending", "u8"), (10, "proxy_arp", "bool"), (12, "proxy_arp_wifi", "bool"),
    (25, "multicast_router", "u8"), (27, "mcast_flood", "bool"), (30, "bcast_flood", "bool"), (28, "mcast_to_unicast", "bool"),
    (32, "neigh_suppress", "bool"), (31, None, "fwd_mask"), (29, "vlan_tunnel", "bool"), (34, "backup_port", "u32"),
    (33, "isolated", "bool"), (39, "locked", "bool"),
)  # fmt: skip


def bridge_port_info_data(buffer: Any, table: dict[int, tuple[int, int]], names: dict[int, str] | None = None) -> tuple[tuple[str, Any], ...]:
    """A bridge port's IFLA_INFO_SLAVE_DATA as ``ip -j -d link`` prints it."""
    out: list[tuple[str, Any]] = []
    for number, key, how in _BRIDGE_PORT_OPTIONS:
        span = table.get(number)
        if span is None:
            continue
        raw = bytes(buffer[span[0] : span[1]])
        if how == "state" and raw:
            out.append((key, _PORT_STATES[raw[0]] if raw[0] < len(_PORT_STATES) else str(raw[0])))
        elif how == "fwd_mask" and len(raw) >= 2:
            mask = int.from_bytes(raw[:2], "little")
            out += [("group_fwd_mask", f"{mask:#x}" if mask else "0"), ("group_fwd_mask_str", f"{mask:#x}")]
        elif key == "backup_port" and len(raw) >= 4:
            index = int.from_bytes(raw[:4], "little")
            out.append((key, (names or {}).get(index) or index))
        else:
            out += bridge_info_data(buffer, {number: span}, ((number, key, how),))
    return tuple(out)
