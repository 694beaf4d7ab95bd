"""Payloads of rtnetlink change requests (links, addresses, routes,
neighbours, rules), validated before anything is sent.

Pure: imports neither asyncio nor socket.

Every builder raises ``ValueError`` with a message naming the bad argument
for a malformed prefix, a value outside the kernel's range or a name the
kernel would refuse, so a caller never learns about a typo from an EINVAL.
Interface names are resolved to indexes by the client before it calls here.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from ...attributes import AttributeBuilder

#: struct fib_rule_uid_range {u32 start, end}; struct fib_rule_port_range {u16 start, end}
_UID_RANGE = struct.Struct("=II")
_PORT_RANGE = struct.Struct("=HH")
from .codec import FIB_RULE_HDR, IFADDRMSG, IFINFOMSG, NDMSG, RTMSG, RTNEXTHOP, family_number
from .constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    ETH_P_8021AD,
    ETH_P_8021Q,
    FR_ACT_TO_TBL,
    FIB_RULE_INVERT,
    FR_ACT_GOTO,
    FRA_DPORT_RANGE,
    FRA_DST,
    FRA_FLOW,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_GOTO,
    FRA_IIFNAME,
    FRA_IP_PROTO,
    FRA_L3MDEV,
    FRA_OIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SPORT_RANGE,
    FRA_SRC,
    FRA_SUPPRESS_IFGROUP,
    FRA_SUPPRESS_PREFIXLEN,
    FRA_TABLE,
    FRA_TUN_ID,
    FRA_UID_RANGE,
    IFA_ADDRESS,
    IFA_BROADCAST,
    IFA_LABEL,
    IFA_LOCAL,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MACVLAN_MODE,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_NET_NS_FD,
    IFLA_TXQLEN,
    IFLA_VLAN_ID,
    IFLA_VLAN_PROTOCOL,
    IFLA_VXLAN_GROUP,
    IFLA_VXLAN_GROUP6,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_LINK,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_LOCAL6,
    IFLA_VXLAN_PORT,
    MACVLAN_MODES,
    NDA_DST,
    NDA_LLADDR,
    NEIGH_STATES_BY_NAME,
    NUD_PERMANENT,
    PROTOCOL_NAMES,
    ROUTE_TYPE_NAMES,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_NOWHERE,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    METRIC_NAMES,
    RTA_DST,
    RTA_EXPIRES,
    RTA_FLOW,
    RTA_GATEWAY,
    RTA_METRICS,
    RTA_MULTIPATH,
    RTA_NH_ID,
    RTA_PREF,
    RTA_SRC,
    RTNH_F_ONLINK,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_TABLE,
    RTN_LOCAL,
    RTN_UNICAST,
    RTPROT_BOOT,
    RULE_ACTION_NAMES,
    SCOPE_NAMES,
    TABLE_NAMES,
    VETH_INFO_PEER,
)

__all__ = [
    "check_ifname",
    "check_range",
    "parse_prefix",
    "parse_lladdr",
    "table_number",
    "link_add_payload",
    "link_set_payload",
    "link_index_payload",
    "address_payload",
    "route_payload",
    "neighbour_payload",
    "rule_payload",
    "LINK_KINDS",
]

#: kinds link_add knows options for; any other kind is created without IFLA_INFO_DATA.
LINK_KINDS = ("veth", "bridge", "vlan", "macvlan", "vxlan", "dummy", "ifb")
_IFNAMSIZ = 16
_LLADDR = re.compile(r"^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5,19}$")
_U32_MAX = 0xFFFFFFFF


def check_range(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high], else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}..{high}")
    return value


def check_ifname(name: str) -> str:
    """dev_valid_name(): 1-15 bytes, not "." or "..", no "/", ":" or whitespace."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"interface name must be a non-empty string, not {name!r}")
    if len(name.encode()) >= _IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {_IFNAMSIZ - 1} bytes (IFNAMSIZ)")
    if name in (".", "..") or any(ch in name for ch in "/:") or any(ch.isspace() for ch in name):
        raise ValueError(f"interface name {name!r} is not valid: no '/', ':' or whitespace, and not '.' or '..'")
    return name


def parse_lladdr(text: str) -> bytes:
    """"02:00:00:00:00:01" -> 6 bytes."""
    if not isinstance(text, str) or not _LLADDR.match(text):
        raise ValueError(f"link-layer address {text!r} is not colon-separated hex bytes like 02:00:5e:00:00:01")
    return bytes(int(part, 16) for part in text.split(":"))


def parse_address(text: Any, family: int = AF_UNSPEC, what: str = "address") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 or IPv6 address") from None
    _check_family(address.version, family, what, text)
    return address


def _check_family(version: int, family: int, what: str, text: Any) -> None:
    if family == AF_INET and version != 4 or family == AF_INET6 and version != 6:
        raise ValueError(f"{what} {text!r} is IPv{version}, but the request is for IPv{4 if family == AF_INET else 6}")


def parse_prefix(text: Any, family: int = AF_UNSPEC, *, strict: bool = True) -> tuple[int, bytes, int]:
    """``"10.0.0.0/8"`` -> (AF_INET, packed network, 8). ``"default"`` needs
    ``family``. ``strict`` refuses host bits (the kernel answers EINVAL
    "Invalid prefix for given prefix length")."""
    if text == "default":
        if family == AF_UNSPEC:
            raise ValueError('"default" needs a family: pass family=4 or family=6')
        return family, bytes(4 if family == AF_INET else 16), 0
    try:
        network = ipaddress.ip_network(text, strict=strict) if strict else ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValueError(f"bad prefix {text!r}: {exc}") from None
    _check_family(network.version, family, "prefix", text)
    if isinstance(network, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        packed, prefixlen = network.ip.packed, network.network.prefixlen
    else:
        packed, prefixlen = network.network_address.packed, network.prefixlen
    return (AF_INET if network.version == 4 else AF_INET6), packed, prefixlen


def table_number(table: int | str | None, default: int = RT_TABLE_MAIN) -> int:
    """"main"/"local"/"default" or 1..2^32-1 -> the table id."""
    if table is None:
        return default
    if isinstance(table, str):
        for number, name in TABLE_NAMES.items():
            if name == table:
                return number
        if table.isdigit():
            table = int(table)
        else:
            raise ValueError(f"table {table!r} is not a number or one of main, local, default")
    return check_range("table", table, 1, _U32_MAX)


def _name_to_number(what: str, value: int | str, names: Mapping[int, str] | tuple[str, ...], high: int) -> int:
    if isinstance(value, str):
        items = enumerate(names) if isinstance(names, tuple) else names.items()
        for number, name in items:
            if name == value:
                return number
        raise ValueError(f"unknown {what} {value!r}")
    return check_range(what, value, 0, high)


# --- links ----------------------------------------------------------------------
def link_add_payload(
    name: str,
    kind: str,
    *,
    peer: str | None = None,
    link: int | None = None,
    vlan_id: int | None = None,
    vlan_protocol: str = "802.1q",
    mode: str | None = None,
    vni: int | None = None,
    local: str | None = None,
    group: str | None = None,
    port: int | None = None,
    mtu: int | None = None,
    address: str | None = None,
    master: int | None = None,
    txqlen: int | None = None,
    up: bool = False,
) -> bytes:
    """ifinfomsg + IFLA_* for RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL.

    veth needs ``peer`` (name); vlan ``link`` (ifindex) and ``vlan_id``;
    macvlan ``link`` and optionally ``mode``; vxlan ``vni`` and optionally
    ``local``, ``group`` (multicast group or remote), ``port``, ``link``."""
    check_ifname(name)
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ValueError(f"link kind must be a name like 'veth' or 'bridge', not {kind!r}")
    builder = AttributeBuilder().add_str(IFLA_IFNAME, name)
    _common_link_attributes(builder, mtu=mtu, address=address, master=master, txqlen=txqlen)
    if kind in ("vlan", "macvlan") or (link is not None and kind != "vxlan"):
        if link is None:
            raise ValueError(f"a {kind} link needs link= (the parent device)")
        builder.add_u32(IFLA_LINK, check_range("link", link, 1, 0x7FFFFFFF))
    with builder.nested(IFLA_LINKINFO, flag=False):
        builder.add_str(IFLA_INFO_KIND, kind)
        if kind == "veth":
            if peer is None:
                raise ValueError("a veth link needs peer= (the name of the other end)")
            check_ifname(peer)
            if peer == name:
                raise ValueError(f"veth peer name {peer!r} equals the link name")
            with builder.nested(IFLA_INFO_DATA, flag=False), builder.nested(VETH_INFO_PEER, flag=False):
                # VETH_INFO_PEER carries a struct ifinfomsg followed by the peer's attributes.
                _append_raw(builder, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0))
                builder.add_str(IFLA_IFNAME, peer)
        elif kind == "vlan":
            protocols = {"802.1q": ETH_P_8021Q, "802.1ad": ETH_P_8021AD}
            if vlan_protocol not in protocols:
                raise ValueError(f"vlan_protocol must be '802.1q' or '802.1ad', not {vlan_protocol!r}")
            with builder.nested(IFLA_INFO_DATA, flag=False):
                builder.add_u16(IFLA_VLAN_ID, check_range("vlan_id", vlan_id if vlan_id is not None else -1, 0, 4094))
                builder.add_be16(IFLA_VLAN_PROTOCOL, protocols[vlan_protocol])
        elif kind == "macvlan" and mode is not None:
            if mode not in MACVLAN_MODES:
                raise ValueError(f"macvlan mode must be one of {', '.join(MACVLAN_MODES)}, not {mode!r}")
            with builder.nested(IFLA_INFO_DATA, flag=False):
                builder.add_u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
        elif kind == "vxlan":
            if vni is None:
                raise ValueError("a vxlan link needs vni= (0..16777215)")
            with builder.nested(IFLA_INFO_DATA, flag=False):
                builder.add_u32(IFLA_VXLAN_ID, check_range("vni", vni, 0, 0xFFFFFF))
                if local is not None:
                    address_value = parse_address(local, what="vxlan local")
                    builder.add(IFLA_VXLAN_LOCAL if address_value.version == 4 else IFLA_VXLAN_LOCAL6, address_value.packed)
                if group is not None:
                    address_value = parse_address(group, what="vxlan group")
                    builder.add(IFLA_VXLAN_GROUP if address_value.version == 4 else IFLA_VXLAN_GROUP6, address_value.packed)
                if link is not None:
                    builder.add_u32(IFLA_VXLAN_LINK, check_range("link", link, 1, 0x7FFFFFFF))
                builder.add_be16(IFLA_VXLAN_PORT, check_range("port", port if port is not None else 4789, 1, 65535))
    flags = IFF_UP if up else 0
    return IFINFOMSG.pack(AF_UNSPEC, 0, 0, flags, IFF_UP if up else 0) + builder.build()


def _append_raw(builder: AttributeBuilder, data: bytes) -> None:
    # A nest whose payload starts with a fixed struct (VETH_INFO_PEER) is
    # not an attribute stream; append the struct bytes as they are.
    builder.extend(data)


def _common_link_attributes(builder: AttributeBuilder, *, mtu: int | None, address: str | None, master: int | None, txqlen: int | None) -> None:
    if mtu is not None:
        builder.add_u32(IFLA_MTU, check_range("mtu", mtu, 68, 0xFFFFFF))
    if address is not None:
        builder.add(IFLA_ADDRESS, parse_lladdr(address))
    if master is not None:
        builder.add_u32(IFLA_MASTER, check_range("master", master, 0, 0x7FFFFFFF))
    if txqlen is not None:
        builder.add_u32(IFLA_TXQLEN, check_range("txqlen", txqlen, 0, _U32_MAX))


def link_set_payload(
    ifindex: int,
    *,
    up: bool | None = None,
    mtu: int | None = None,
    name: str | None = None,
    master: int | None = None,
    address: str | None = None,
    txqlen: int | None = None,
    netns_fd: int | None = None,
) -> bytes:
    """ifinfomsg (ifi_change selects the flags to set) + IFLA_* for an
    RTM_NEWLINK on an existing interface. ``master=0`` detaches."""
    check_range("ifindex", ifindex, 1, 0x7FFFFFFF)
    builder = AttributeBuilder()
    if name is not None:
        builder.add_str(IFLA_IFNAME, check_ifname(name))
    _common_link_attributes(builder, mtu=mtu, address=address, master=master, txqlen=txqlen)
    if netns_fd is not None:
        builder.add_u32(IFLA_NET_NS_FD, check_range("netns fd", netns_fd, 0, 0x7FFFFFFF))
    flags = change = 0
    if up is not None:
        change = IFF_UP
        flags = IFF_UP if up else 0
    if not len(builder) and not change:
        raise ValueError("link_set() needs at least one change: up, mtu, name, master, address, txqlen or netns")
    return IFINFOMSG.pack(AF_UNSPEC, 0, ifindex, flags, change) + builder.build()


def link_index_payload(ifindex: int) -> bytes:
    """ifinfomsg naming one interface (RTM_DELLINK, RTM_GETLINK)."""
    return IFINFOMSG.pack(AF_UNSPEC, 0, check_range("ifindex", ifindex, 1, 0x7FFFFFFF), 0, 0)


# --- addresses ------------------------------------------------------------------
def address_payload(ifindex: int, address: str, *, broadcast: str | None = None, label: str | None = None, scope: int | str | None = None, peer: str | None = None) -> bytes:
    """ifaddrmsg + IFA_LOCAL/IFA_ADDRESS for RTM_NEWADDR and RTM_DELADDR.
    ``address`` is "192.0.2.1/24" (host bits are the address itself)."""
    check_range("ifindex", ifindex, 1, 0x7FFFFFFF)
    family, packed, prefixlen = parse_prefix(address, strict=False)
    if "/" not in str(address):
        prefixlen = 32 if family == AF_INET else 128
    builder = AttributeBuilder()
    # IPv4 wants IFA_LOCAL (the address) and IFA_ADDRESS (the peer, or the
    # address itself); IPv6 keys addresses on IFA_ADDRESS / IFA_LOCAL alike.
    builder.add(IFA_LOCAL, packed)
    builder.add(IFA_ADDRESS, parse_address(peer, family, "peer").packed if peer is not None else packed)
    if broadcast is not None:
        if family != AF_INET:
            raise ValueError("broadcast addresses exist for IPv4 only")
        builder.add(IFA_BROADCAST, parse_address(broadcast, family, "broadcast").packed)
    if label is not None:
        if family != AF_INET:
            raise ValueError("address labels exist for IPv4 only")
        if len(label.encode()) >= _IFNAMSIZ:
            raise ValueError(f"label {label!r} is longer than {_IFNAMSIZ - 1} bytes")
        builder.add_str(IFA_LABEL, label)
    scope_number = RT_SCOPE_UNIVERSE if scope is None else _name_to_number("scope", scope, SCOPE_NAMES, 255)
    return IFADDRMSG.pack(family, prefixlen, 0, scope_number, ifindex) + builder.build()


# --- routes ---------------------------------------------------------------------
def route_payload(
    dst: str,
    *,
    family: int | None = None,
    gateway: str | None = None,
    oif: int | None = None,
    table: int | str | None = None,
    metric: int | None = None,
    scope: int | str | None = None,
    type: int | str = RTN_UNICAST,
    protocol: int | str = RTPROT_BOOT,
    prefsrc: str | None = None,
    multipath: Iterable[Mapping[str, Any]] | None = None,
    delete: bool = False,
    metrics: Mapping[str, Any] | None = None,
    expires: int | None = None,
    pref: int | str | None = None,
    tos: int = 0,
    src: str | None = None,
    realms: int | None = None,
    nhid: int | None = None,
    onlink: bool = False,
) -> bytes:
    """rtmsg + RTA_* for RTM_NEWROUTE / RTM_DELROUTE.

    ``multipath`` is a list of ``{"gateway": ..., "oif": ifindex, "weight": 1..256}``
    (the client turns ``dev`` names into ``oif``). ``metrics`` takes the
    names ``ip route`` takes (``{"mtu": 1400, "advmss": 1360, "rtt": 20,
    "congctl": "reno", "features": "ecn", "lock": ["mtu"]}``; rtt, rttvar
    and rto_min in milliseconds, as ``ip``). ``expires`` (seconds, IPv6),
    ``pref`` ("low", "medium", "high"), ``tos``, ``src`` (a source prefix,
    IPv6 subtrees), ``realms`` (``from << 16 | to``), ``nhid`` (a nexthop
    object), ``onlink``."""
    family_value = family_number(family)
    family_value, packed, prefixlen = parse_prefix(dst, family_value)
    route_type = _name_to_number("route type", type, ROUTE_TYPE_NAMES, 255)
    protocol_value = _name_to_number("protocol", protocol, PROTOCOL_NAMES, 255)
    table_value = table_number(table)
    if scope is None:
        if delete:
            scope_value = RT_SCOPE_NOWHERE  # rtm_scope NOWHERE matches any scope on delete
        elif route_type == RTN_LOCAL:
            scope_value = RT_SCOPE_HOST
        elif gateway is None and multipath is None and route_type == RTN_UNICAST and oif is not None:
            scope_value = RT_SCOPE_LINK  # a directly connected route, as `ip route add ... dev X` makes
        else:
            scope_value = RT_SCOPE_UNIVERSE
    else:
        scope_value = _name_to_number("scope", scope, SCOPE_NAMES, 255)
    builder = AttributeBuilder()
    builder.add_u32(RTA_TABLE, table_value)
    if prefixlen or packed != bytes(len(packed)):
        builder.add(RTA_DST, packed)
    if gateway is not None:
        builder.add(RTA_GATEWAY, parse_address(gateway, family_value, "gateway").packed)
    if oif is not None:
        builder.add_u32(RTA_OIF, check_range("oif", oif, 1, 0x7FFFFFFF))
    if metric is not None:
        builder.add_u32(RTA_PRIORITY, check_range("metric", metric, 0, _U32_MAX))
    if prefsrc is not None:
        builder.add(RTA_PREFSRC, parse_address(prefsrc, family_value, "prefsrc").packed)
    if multipath is not None:
        builder.add(RTA_MULTIPATH, _multipath(multipath, family_value))
    src_len = 0
    if src is not None:
        family_value, packed_src, src_len = parse_prefix(src, family_value)
        builder.add(RTA_SRC, packed_src)
    if metrics:
        builder.add(RTA_METRICS, _metrics(metrics))
    if expires is not None:
        builder.add_u32(RTA_EXPIRES, check_range("expires", expires, 0, _U32_MAX))
    if pref is not None:
        pref_value = {"medium": 0, "high": 1, "low": 3}.get(pref, pref) if isinstance(pref, str) else pref
        if not isinstance(pref_value, int):
            raise ValueError(f"pref must be low, medium, high or a number, not {pref!r}")
        builder.add_u8(RTA_PREF, check_range("pref", pref_value, 0, 255))
    if realms is not None:
        builder.add_u32(RTA_FLOW, check_range("realms", realms, 0, _U32_MAX))
    if nhid is not None:
        builder.add_u32(RTA_NH_ID, check_range("nhid", nhid, 1, _U32_MAX))
    header = RTMSG.pack(
        family_value,
        prefixlen,
        src_len,
        check_range("tos", tos, 0, 255),
        table_value if table_value < 256 else 0,
        0 if delete and protocol == RTPROT_BOOT else protocol_value,
        scope_value,
        0 if delete and type == RTN_UNICAST else route_type,
        RTNH_F_ONLINK if onlink else 0,
    )
    return header + builder.build()


#: ``ip route``'s metric names -> RTAX_* (METRIC_NAMES reversed, "congctl" as ip spells it)
_METRIC_NUMBERS = {name: number for number, name in METRIC_NAMES.items()} | {"congctl": 16}


def _metrics(metrics: Mapping[str, Any]) -> bytes:
    """RTA_METRICS members, as iproute_modify() builds them: rtt and rttvar
    in the kernel's units (ms << 3, ms << 2), rto_min in ms, features
    "ecn", congctl a string, "lock" a list of names locked (RTAX_LOCK)."""
    builder = AttributeBuilder()
    lock = 0
    for name, value in metrics.items():
        if name == "lock":
            for locked in value:
                if locked not in _METRIC_NUMBERS:
                    raise ValueError(f"cannot lock unknown metric {locked!r}")
                lock |= 1 << _METRIC_NUMBERS[locked]
            continue
        if name not in _METRIC_NUMBERS:
            raise ValueError(f"unknown route metric {name!r}: use {', '.join(sorted(_METRIC_NUMBERS))}")
        number = _METRIC_NUMBERS[name]
        if name in ("congctl", "congestion"):
            builder.add_str(number, str(value))
            continue
        if name == "features":
            value = {"ecn": 1}.get(value, value) if isinstance(value, str) else value
            if not isinstance(value, int):
                raise ValueError(f"route features must be 'ecn' or a number, not {value!r}")
        scale = 8 if name == "rtt" else 4 if name == "rttvar" else 1
        builder.add_u32(number, check_range(name, value * scale, 0, _U32_MAX))
    if lock:
        builder.add_u32(1, lock)
    return builder.build()


def _multipath(hops: Iterable[Mapping[str, Any]], family: int) -> bytes:
    out = bytearray()
    count = 0
    for hop in hops:
        unknown = set(hop) - {"gateway", "oif", "weight"}
        if unknown:
            raise ValueError(f"multipath hop has unknown keys {sorted(unknown)}: use gateway, dev (or oif) and weight")
        weight = check_range("weight", hop.get("weight", 1), 1, 256)
        attributes = AttributeBuilder()
        if hop.get("gateway") is not None:
            attributes.add(RTA_GATEWAY, parse_address(hop["gateway"], family, "gateway").packed)
        oif = hop.get("oif") or 0
        check_range("oif", oif, 0, 0x7FFFFFFF)
        body = attributes.build()
        out += RTNEXTHOP.pack(8 + len(body), 0, weight - 1, oif) + body
        count += 1
    if not count:
        raise ValueError("multipath needs at least one hop")
    return bytes(out)


# --- neighbours -----------------------------------------------------------------
def neighbour_payload(ifindex: int, dst: str, *, lladdr: str | None = None, state: int | str = NUD_PERMANENT) -> bytes:
    """ndmsg + NDA_DST/NDA_LLADDR for RTM_NEWNEIGH / RTM_DELNEIGH."""
    check_range("ifindex", ifindex, 1, 0x7FFFFFFF)
    address = parse_address(dst, what="neighbour")
    if isinstance(state, str):
        if state.lower() not in NEIGH_STATES_BY_NAME:
            raise ValueError(f"neighbour state must be one of {', '.join(NEIGH_STATES_BY_NAME)}, not {state!r}")
        state = NEIGH_STATES_BY_NAME[state.lower()]
    check_range("state", state, 0, 0xFFFF)
    builder = AttributeBuilder().add(NDA_DST, address.packed)
    if lladdr is not None:
        builder.add(NDA_LLADDR, parse_lladdr(lladdr))
    family = AF_INET if address.version == 4 else AF_INET6
    return NDMSG.pack(family, ifindex, state, 0, 0) + builder.build()


# --- rules ----------------------------------------------------------------------
def rule_payload(
    *,
    family: int | None = None,
    priority: int | None = None,
    table: int | str | None = None,
    src: str | None = None,
    dst: str | None = None,
    fwmark: int | None = None,
    fwmask: int | None = None,
    iif: str | None = None,
    oif: str | None = None,
    action: int | str = FR_ACT_TO_TBL,
    delete: bool = False,
    invert: bool = False,
    tos: int = 0,
    goto: int | None = None,
    uidrange: tuple[int, int] | None = None,
    ipproto: int | None = None,
    sport: int | tuple[int, int] | None = None,
    dport: int | tuple[int, int] | None = None,
    l3mdev: bool = False,
    suppress_prefixlength: int | None = None,
    suppress_ifgroup: int | None = None,
    realms: int | None = None,
    protocol: int | None = None,
    tun_id: int | None = None,
) -> bytes:
    """fib_rule_hdr + FRA_* for RTM_NEWRULE / RTM_DELRULE, with every
    selector and action ``ip rule`` accepts: ``invert`` ("not"), ``tos``,
    ``uidrange=(start, end)``, ``ipproto``, ``sport``/``dport`` (a port or
    (start, end)), ``tun_id``, ``l3mdev``, ``suppress_prefixlength``,
    ``suppress_ifgroup``, ``realms`` (``from << 16 | to``), ``protocol``,
    ``goto`` (with ``action="goto"``)."""
    family_value = family_number(family)
    src_len = dst_len = 0
    builder = AttributeBuilder()
    if src is not None:
        family_value, packed, src_len = parse_prefix(src, family_value)
        builder.add(FRA_SRC, packed)
    if dst is not None:
        family_value, packed, dst_len = parse_prefix(dst, family_value)
        builder.add(FRA_DST, packed)
    if family_value == AF_UNSPEC:
        family_value = AF_INET
    if priority is not None:
        builder.add_u32(FRA_PRIORITY, check_range("priority", priority, 0, _U32_MAX))
    if fwmark is not None:
        builder.add_u32(FRA_FWMARK, check_range("fwmark", fwmark, 0, _U32_MAX))
    if fwmask is not None:
        builder.add_u32(FRA_FWMASK, check_range("fwmask", fwmask, 0, _U32_MAX))
    if iif is not None:
        builder.add_str(FRA_IIFNAME, check_ifname(iif))
    if oif is not None:
        builder.add_str(FRA_OIFNAME, check_ifname(oif))
    if goto is not None:
        builder.add_u32(FRA_GOTO, check_range("goto", goto, 0, _U32_MAX))
        if action == FR_ACT_TO_TBL:
            action = FR_ACT_GOTO
    if l3mdev:
        builder.add_u8(FRA_L3MDEV, 1)
    if uidrange is not None:
        start, end = (check_range("uidrange", value, 0, _U32_MAX) for value in uidrange)
        builder.add(FRA_UID_RANGE, _UID_RANGE.pack(start, end))
    if ipproto is not None:
        builder.add_u8(FRA_IP_PROTO, check_range("ipproto", ipproto, 0, 255))
    for attr_type, name, ports in ((FRA_SPORT_RANGE, "sport", sport), (FRA_DPORT_RANGE, "dport", dport)):
        if ports is not None:
            start, end = (ports, ports) if isinstance(ports, int) else ports
            builder.add(attr_type, _PORT_RANGE.pack(check_range(name, start, 0, 0xFFFF), check_range(name, end, 0, 0xFFFF)))
    if tun_id is not None:
        builder.add(FRA_TUN_ID, check_range("tun_id", tun_id, 0, 2**64 - 1).to_bytes(8, "big"))
    if suppress_prefixlength is not None:
        builder.add_u32(FRA_SUPPRESS_PREFIXLEN, check_range("suppress_prefixlength", suppress_prefixlength, 0, _U32_MAX))
    if suppress_ifgroup is not None:
        builder.add_u32(FRA_SUPPRESS_IFGROUP, check_range("suppress_ifgroup", suppress_ifgroup, 0, _U32_MAX))
    if realms is not None:
        builder.add_u32(FRA_FLOW, check_range("realms", realms, 0, _U32_MAX))
    if protocol is not None:
        builder.add_u8(FRA_PROTOCOL, check_range("protocol", protocol, 0, 255))
    if isinstance(action, str):
        names = {name: number for number, name in RULE_ACTION_NAMES.items()} | {"table": FR_ACT_TO_TBL, "lookup": FR_ACT_TO_TBL, "goto": FR_ACT_GOTO}
        if action not in names:
            raise ValueError(f"rule action must be one of {', '.join(sorted(names))}, not {action!r}")
        action = names[action]
    check_range("action", action, 0, 255)
    table_value = 0
    # iprule_modify(): an l3mdev rule looks up the device's table, none given
    if action == FR_ACT_TO_TBL and (table is not None or not (delete or l3mdev)):
        table_value = table_number(table)
        builder.add_u32(FRA_TABLE, table_value)
    flags = FIB_RULE_INVERT if invert else 0
    header = FIB_RULE_HDR.pack(family_value, dst_len, src_len, check_range("tos", tos, 0, 255), table_value if table_value < 256 else 0, 0, 0, action, flags)
    return header + builder.build()

