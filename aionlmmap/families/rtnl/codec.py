"""Decoders from rtnetlink messages to :mod:`rtnl_objects` values, and the
payloads of dump requests (with the kernel-side filters strict checking
accepts).

Pure: imports neither asyncio nor socket.

Every decoder takes ``(buffer, start, end)``: the message payload (after
the nlmsghdr) inside a frame, so nothing is copied before decoding, and a
``names`` map ``ifindex -> ifname`` to fill in ``dev``/``master`` names the
way ``ip`` shows them. The route decoder is the hot path of a 100,000-route
dump: one precompiled struct for the header and an inline attribute walk
that keeps only the spans it needs.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ..._extensions import speedups as _speedups
from ...attributes import AttributeBuilder, parse_attributes
from ...errors import DecodeError
from ...address_text import ipv4_text, ipv6_text
from .constants import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    FRA_DPORT_RANGE,
    FRA_DST,
    FRA_FLOW,
    FRA_IP_PROTO,
    FRA_L3MDEV,
    FRA_SPORT_RANGE,
    FRA_SUPPRESS_IFGROUP,
    FRA_TUN_ID,
    FRA_UID_RANGE,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_GOTO,
    FRA_IIFNAME,
    FRA_OIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SRC,
    FRA_SUPPRESS_PREFIXLEN,
    FRA_TABLE,
    IFA_ADDRESS,
    IFA_ANYCAST,
    IFA_BROADCAST,
    IFA_CACHEINFO,
    IFA_FLAGS,
    IFA_LABEL,
    IFA_LOCAL,
    IFA_RT_PRIORITY,
    IFLA_ADDRESS,
    IFLA_BROADCAST,
    IFLA_EXT_MASK,
    IFLA_GROUP,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_LINKINFO,
    IFLA_LINKMODE,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    IFLA_QDISC,
    IFLA_TXQLEN,
    NDA_CACHEINFO,
    NDA_DST,
    NDA_IFINDEX,
    NDA_LLADDR,
    NDA_PROBES,
    NDA_PROTOCOL,
    RTA_CACHEINFO,
    RTA_DST,
    RTA_ENCAP,
    RTA_ENCAP_TYPE,
    RTA_FLOW,
    RTA_GATEWAY,
    RTA_IIF,
    RTA_MARK,
    RTA_METRICS,
    RTA_MULTIPATH,
    RTA_NH_ID,
    RTA_OIF,
    RTA_PREF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_SRC,
    RTA_TABLE,
    RTA_UID,
    RTA_VIA,
    RTEXT_FILTER_SKIP_STATS,
    RTM_F_CLONED,
)
from .link_values import decode_altnames, decode_details, decode_stats64
from .link_values import IFLA_PERM_ADDRESS, IFLA_PROTO_DOWN
from .objects import Address, Link, Neighbour, Nexthop, Route, Rule, _build_route, route_extra
from .route_layout import decode as _layout_decode
from .route_layout import is_known as _layout_known
from .route_layout import learn as _layout_learn
from .route_values import CACHEINFO, USER_HZ, expires_seconds
from .route_values import metrics as route_metrics
from .route_values import via as route_via
from .route_values import encap as route_encap

__all__ = [
    "IFINFOMSG",
    "IFADDRMSG",
    "RTMSG",
    "NDMSG",
    "FIB_RULE_HDR",
    "format_address",
    "format_lladdr",
    "decode_link",
    "resolve_link",
    "decode_address",
    "decode_route",
    "decode_neighbour",
    "decode_rule",
    "link_dump_request",
    "address_dump_request",
    "route_dump_request",
    "neighbour_dump_request",
    "rule_dump_request",
    "family_number",
]

#: struct ifinfomsg {u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change}
IFINFOMSG = struct.Struct("=BxHiII")
#: struct ifaddrmsg {u8 family, prefixlen, flags, scope; u32 index}
IFADDRMSG = struct.Struct("=BBBBI")
#: struct rtmsg {u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags}
RTMSG = struct.Struct("=BBBBBBBBI")
#: struct ndmsg {u8 family, pad1; u16 pad2; s32 ifindex; u16 state; u8 flags, type}
NDMSG = struct.Struct("=BxxxiHBB")
#: struct nda_cacheinfo {u32 ndm_confirmed, ndm_used, ndm_updated, ndm_refcnt}
NDA_CACHEINFO_STRUCT = struct.Struct("=IIII")
#: struct fib_rule_hdr {u8 family, dst_len, src_len, tos, table, res1, res2, action; u32 flags}
FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
#: struct rtnexthop {u16 len; u8 flags; u8 hops; s32 ifindex}
RTNEXTHOP = struct.Struct("=HBBi")
#: struct ifa_cacheinfo {u32 prefered, valid, cstamp, tstamp}
IFA_CACHEINFO_STRUCT = struct.Struct("=II")
#: struct ifa_cacheinfo whole: ifa_prefered, ifa_valid, cstamp, tstamp
IFA_CACHEINFO_FULL = struct.Struct("=IIII")

_NLATTR = struct.Struct("=HH")
_unpack_nlattr = _NLATTR.unpack_from
_unpack_rtmsg = RTMSG.unpack_from
_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")
_unpack_u32 = _U32.unpack_from
_S32 = struct.Struct("=i")


def format_address(buffer: Any, start: int, end: int) -> str:
    """An IPv4 or IPv6 address as ``ip`` prints it (``inet_ntop``; see
    ``rtnl_addresses``)."""
    size = end - start
    if size == 4:
        return ipv4_text(buffer, start)
    if size == 16:
        return ipv6_text(bytes(buffer[start:end]))
    raise DecodeError(f"address attribute of {size} bytes is neither IPv4 (4) nor IPv6 (16)")


def format_lladdr(buffer: Any, start: int, end: int) -> str:
    """A link-layer address as colon-separated hex ("02:00:5e:10:00:01")."""
    return bytes(buffer[start:end]).hex(":")


def _string(buffer: Any, span: tuple[int, int]) -> str:
    raw = bytes(buffer[span[0] : span[1]])
    nul = raw.find(b"\0")
    return (raw if nul < 0 else raw[:nul]).decode("utf-8", "replace")


def _u32(buffer: Any, span: tuple[int, int] | None) -> int | None:
    if span is None:
        return None
    if span[1] - span[0] < 4:
        raise DecodeError(f"u32 attribute of {span[1] - span[0]} bytes")
    return _unpack_u32(buffer, span[0])[0]  # type: ignore[no-any-return]


def _u8(buffer: Any, span: tuple[int, int] | None) -> int | None:
    if span is None:
        return None
    if span[1] <= span[0]:
        raise DecodeError("empty u8 attribute")
    return buffer[span[0]]  # type: ignore[no-any-return]


def _s32(buffer: Any, span: tuple[int, int] | None) -> int | None:
    if span is None:
        return None
    if span[1] - span[0] < 4:
        raise DecodeError(f"s32 attribute of {span[1] - span[0]} bytes")
    return _S32.unpack_from(buffer, span[0])[0]  # type: ignore[no-any-return]


def family_number(family: int | None) -> int:
    """Accept None, 4, 6, AF_INET, AF_INET6 and return the AF_* number."""
    if family is None or family == AF_UNSPEC:
        return AF_UNSPEC
    if family in (4, AF_INET):
        return AF_INET
    if family in (6, AF_INET6):
        return AF_INET6
    raise ValueError(f"family must be None, 4, 6, socket.AF_INET or socket.AF_INET6, not {family!r}")


# --- links ----------------------------------------------------------------------
def decode_link(buffer: Any, start: int, end: int, names: dict[int, str] | None = None) -> Link:
    """RTM_NEWLINK/RTM_DELLINK payload -> :class:`Link` (names of the lower
    device and master not filled in: see :func:`resolve_link`; ``names``
    only names a vxlan's underlying device in ``details``)."""
    if end - start < IFINFOMSG.size:
        raise DecodeError(f"link message of {end - start} bytes is shorter than struct ifinfomsg")
    _family, link_type, ifindex, flags, _change = IFINFOMSG.unpack_from(buffer, start)
    table = parse_attributes(buffer, start + IFINFOMSG.size, end)
    get = table.get
    span = get(IFLA_IFNAME)
    kind = None
    info = get(IFLA_LINKINFO)
    linkinfo = None
    if info is not None:
        linkinfo = parse_attributes(buffer, info[0], info[1])
        kind_span = linkinfo.get(IFLA_INFO_KIND)
        if kind_span is not None:
            kind = _string(buffer, kind_span)
    address = format_lladdr(buffer, *table[IFLA_ADDRESS]) if IFLA_ADDRESS in table else None
    permaddr_span = get(IFLA_PERM_ADDRESS)
    permaddr = format_lladdr(buffer, *permaddr_span) if permaddr_span is not None else None
    proto_down = get(IFLA_PROTO_DOWN)
    operstate = get(IFLA_OPERSTATE)
    linkmode = get(IFLA_LINKMODE)
    netnsid = get(IFLA_LINK_NETNSID)
    return Link(
        ifindex=ifindex,
        ifname=_string(buffer, span) if span is not None else f"if{ifindex}",
        flags=flags,
        mtu=_u32(buffer, get(IFLA_MTU)),
        qdisc=_string(buffer, get(IFLA_QDISC)) if IFLA_QDISC in table else None,  # type: ignore[arg-type]
        operstate=_u8(buffer, operstate),
        linkmode=_u8(buffer, linkmode),
        group=_u32(buffer, get(IFLA_GROUP)),
        txqlen=_u32(buffer, get(IFLA_TXQLEN)),
        link_type=link_type,
        address=address,
        broadcast=format_lladdr(buffer, *table[IFLA_BROADCAST]) if IFLA_BROADCAST in table else None,
        kind=kind,
        alias=_string(buffer, table[IFLA_IFALIAS]) if IFLA_IFALIAS in table else None,
        link_ifindex=_u32(buffer, get(IFLA_LINK)),
        link_netnsid=_s32(buffer, netnsid),
        master_ifindex=_u32(buffer, get(IFLA_MASTER)),
        altnames=decode_altnames(buffer, table),
        # print_linkinfo() shows the permanent address only when it differs
        permaddr=permaddr if permaddr != address else None,
        proto_down=bool(proto_down is not None and proto_down[1] > proto_down[0] and buffer[proto_down[0]]),
        stats=decode_stats64(buffer, table),
        details=decode_details(buffer, table, linkinfo, names),
    )


def resolve_link(link: Link, links: dict[int, Link]) -> Link:
    """Fill in the names of the lower device and the master, and whether the
    lower device is up (iproute2 prints M-DOWN when it is not)."""
    details = link.details
    if details is not None and details.info_data is not None and any(key == "link" and isinstance(value, int) for key, value in details.info_data):
        # a vxlan's underlying device, by name as ip shows it
        named = tuple((key, links[value].ifname if key == "link" and isinstance(value, int) and value in links else value) for key, value in details.info_data)
        link = attrs.evolve(link, details=attrs.evolve(details, info_data=named))
    lower = links.get(link.link_ifindex) if link.link_ifindex and link.link_netnsid is None else None  # type: ignore[arg-type]
    master = links.get(link.master_ifindex) if link.master_ifindex else None  # type: ignore[arg-type]
    if lower is None and master is None:
        return link
    return attrs.evolve(
        link,
        link=lower.ifname if lower is not None else None,
        master=master.ifname if master is not None else None,
        lower_up=lower.is_up if lower is not None else None,
    )


def link_dump_request(kind: str | None = None, master: int | None = None, stats: bool = False) -> bytes:
    """ifinfomsg + filters ``rtnl_dump_ifinfo`` applies in the kernel
    (IFLA_MASTER, IFLA_LINKINFO/IFLA_INFO_KIND) + IFLA_EXT_MASK skipping the
    statistics blocks (smaller messages) unless ``stats`` asks for them."""
    builder = AttributeBuilder().add_u32(IFLA_EXT_MASK, 0 if stats else RTEXT_FILTER_SKIP_STATS)
    if master is not None:
        builder.add_u32(IFLA_MASTER, master)
    if kind is not None:
        with builder.nested(IFLA_LINKINFO, flag=False):
            builder.add_str(IFLA_INFO_KIND, kind)
    return IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + builder.build()


# --- addresses ------------------------------------------------------------------
def decode_address(buffer: Any, start: int, end: int, names: dict[int, str] | None = None) -> Address:
    """RTM_NEWADDR/RTM_DELADDR payload -> :class:`Address`."""
    if end - start < IFADDRMSG.size:
        raise DecodeError(f"address message of {end - start} bytes is shorter than struct ifaddrmsg")
    family, prefixlen, flags, scope, ifindex = IFADDRMSG.unpack_from(buffer, start)
    table = parse_attributes(buffer, start + IFADDRMSG.size, end)
    # iproute2 print_addrinfo(): IFA_LOCAL and IFA_ADDRESS stand in for each
    # other when only one is present (IPv6 sends IFA_ADDRESS only).
    local_span = table.get(IFA_LOCAL) or table.get(IFA_ADDRESS)
    if local_span is None:
        raise DecodeError("address message without IFA_LOCAL or IFA_ADDRESS")
    local = format_address(buffer, *local_span)
    address_span = table.get(IFA_ADDRESS)
    cache = table.get(IFA_CACHEINFO)
    preferred = valid = tstamp = None
    if cache is not None and cache[1] - cache[0] >= IFA_CACHEINFO_FULL.size:
        preferred, valid, _cstamp, tstamp = IFA_CACHEINFO_FULL.unpack_from(buffer, cache[0])
    elif cache is not None and cache[1] - cache[0] >= 8:
        preferred, valid = IFA_CACHEINFO_STRUCT.unpack_from(buffer, cache[0])
    flags_span = table.get(IFA_FLAGS)
    if flags_span is not None:
        flags = _u32(buffer, flags_span)
    return Address(
        family=family,
        prefixlen=prefixlen,
        ifindex=ifindex,
        local=local,
        address=format_address(buffer, *address_span) if address_span is not None else None,
        scope=scope,
        flags=flags,
        broadcast=format_address(buffer, *table[IFA_BROADCAST]) if IFA_BROADCAST in table else None,
        anycast=format_address(buffer, *table[IFA_ANYCAST]) if IFA_ANYCAST in table else None,
        label=_string(buffer, table[IFA_LABEL]) if IFA_LABEL in table else None,
        valid_lft=valid,
        preferred_lft=preferred,
        dev=names.get(ifindex) if names else None,
        metric=_u32(buffer, table.get(IFA_RT_PRIORITY)),
        tstamp=tstamp,
    )


def address_dump_request(family: int = AF_UNSPEC, ifindex: int = 0) -> bytes:
    """ifaddrmsg; with strict checking the kernel filters on ``ifa_index``
    (inet_valid_dump_ifaddr_req / inet6_valid_dump_ifaddr_req)."""
    return IFADDRMSG.pack(family, 0, 0, 0, ifindex)


# --- routes ---------------------------------------------------------------------
def decode_route(buffer: Any, start: int, end: int, names: dict[int, str] | None = None) -> Route:
    """RTM_NEWROUTE/RTM_DELROUTE payload -> :class:`Route`."""
    route = _layout_decode(buffer, start, end, names)
    if route is not None:
        return route
    try:
        family, dst_len, src_len, tos, table, protocol, scope, route_type, flags = _unpack_rtmsg(buffer, start)
    except struct.error:
        raise DecodeError(f"route message of {end - start} bytes is shorter than struct rtmsg") from None
    dst = src = gateway = prefsrc = None
    oif = priority = pref = None
    multipath = None
    nhid = via = flow = mark = uid = expires = error = iif = users = used = age = None
    metrics: tuple[tuple[str, Any], ...] = ()
    encap: tuple[tuple[str, Any], ...] = ()
    encap_type = 0
    encap_span = None
    spans: list[tuple[int, int, int, int]] | None = [] if not _layout_known(end - start) else None
    # Inline nlattr walk (fib_dump_info() sends 3-8 attributes): cheaper
    # than building a table and looking each one up again.
    offset = start + 12
    while end - offset >= 4:
        length, raw_type = _unpack_nlattr(buffer, offset)
        value = offset + 4
        value_end = offset + length
        if length < 4 or value_end > end:
            raise DecodeError(f"route attribute type {raw_type & 0x3FFF} at offset {offset - start}: bad nla_len {length}")
        if spans is not None:
            spans.append((raw_type, offset - start, value - start, length - 4))
        attr_type = raw_type & 0x3FFF
        if attr_type == RTA_DST:
            dst = format_address(buffer, value, value_end)
        elif attr_type == RTA_TABLE:
            table = _u32(buffer, (value, value_end))
        elif attr_type == RTA_OIF:
            oif = _u32(buffer, (value, value_end))
        elif attr_type == RTA_GATEWAY:
            gateway = format_address(buffer, value, value_end)
        elif attr_type == RTA_PRIORITY:
            priority = _u32(buffer, (value, value_end))
        elif attr_type == RTA_PREFSRC:
            prefsrc = format_address(buffer, value, value_end)
        elif attr_type == RTA_PREF:
            if value_end - value < 1:
                raise DecodeError("empty RTA_PREF attribute")
            pref = buffer[value]
        elif attr_type == RTA_SRC:
            src = format_address(buffer, value, value_end)
        elif attr_type == RTA_MULTIPATH:
            multipath = (value, value_end)
        elif attr_type == RTA_CACHEINFO:
            if value_end - value >= CACHEINFO.size:
                clntref, lastuse, ticks, cache_error, rta_used = CACHEINFO.unpack_from(buffer, value)[:5]
                expires = expires_seconds(ticks) if ticks else None
                error = cache_error or None
                # rtnl_put_cacheinfo(): the dst's counters, 0 for a FIB
                # route; print_rta_cacheinfo() shows lastuse / hz as "age"
                users = clntref or None
                used = rta_used or None
                age = lastuse // USER_HZ if lastuse else None
        elif attr_type == RTA_METRICS:
            metrics = route_metrics(bytes(buffer[value:value_end]))
        elif attr_type == RTA_NH_ID:
            nhid = _u32(buffer, (value, value_end))
        elif attr_type == RTA_VIA:
            via = route_via(bytes(buffer[value:value_end]))
        elif attr_type == RTA_FLOW:
            flow = _u32(buffer, (value, value_end))
        elif attr_type == RTA_MARK:
            mark = _u32(buffer, (value, value_end))
        elif attr_type == RTA_UID:
            uid = _u32(buffer, (value, value_end))
        elif attr_type == RTA_ENCAP:
            encap_span = (value, value_end)
        elif attr_type == RTA_ENCAP_TYPE:
            if value_end - value >= 2:
                encap_type = _U16.unpack_from(buffer, value)[0]
        elif attr_type == RTA_IIF:
            iif_index = _u32(buffer, (value, value_end))
            iif = (names.get(iif_index) if names else None) or f"if{iif_index}"
        offset = (value_end + 3) & ~3
    if encap_span is not None:
        encap = route_encap(encap_type, bytes(buffer[encap_span[0] : encap_span[1]]))
    route = _build_route(
        family,
        table,
        dst,
        dst_len,
        route_type,
        protocol,
        scope,
        flags,
        tos,
        priority,
        gateway,
        oif,
        (names.get(oif) if names else None) if oif is not None else None,
        prefsrc,
        src,
        src_len,
        pref,
        _decode_nexthops(buffer, multipath[0], multipath[1], names) if multipath is not None else (),
        route_extra(nhid, via, flow, mark, uid, expires, error, metrics, iif, encap, users, used, age)
        if nhid is not None or via is not None or flow is not None or mark is not None or uid is not None
        or expires is not None or error is not None or metrics or iif is not None or encap
        or users is not None or used is not None or age is not None
        else None,
    )
    if spans is not None:
        _layout_learn(end - start, spans)
    return route



# The compiled twin (aionlmmap/_speedups_routes.pxi: the attribute walk in
# C) takes the name unless pure Python is selected (aionlmmap._extensions);
# the definition above stays the reference.
_pure_decode_route = decode_route
if _speedups is not None:
    decode_route = _speedups.decode_route  # type: ignore[misc, no-redef, assignment]  # noqa: F811

def _decode_nexthops(buffer: Any, start: int, end: int, names: dict[int, str] | None) -> tuple[Nexthop, ...]:
    nexthops = []
    offset = start
    while end - offset >= RTNEXTHOP.size:
        length, flags, hops, ifindex = RTNEXTHOP.unpack_from(buffer, offset)
        if length < RTNEXTHOP.size or offset + length > end:
            raise DecodeError(f"rtnexthop length {length} at offset {offset} overruns RTA_MULTIPATH")
        attributes = parse_attributes(buffer, offset + RTNEXTHOP.size, offset + length)
        gateway = attributes.get(RTA_GATEWAY)
        via = attributes.get(RTA_VIA)
        nexthops.append(
            Nexthop(
                ifindex=ifindex,
                gateway=format_address(buffer, *gateway) if gateway is not None else None,
                weight=hops + 1,
                flags=flags,
                dev=names.get(ifindex) if names else None,
                via=route_via(bytes(buffer[via[0] : via[1]])) if via is not None else None,
                flow=_u32(buffer, attributes.get(RTA_FLOW)),
            )
        )
        offset += (length + 3) & ~3
    return tuple(nexthops)


def route_dump_request(family: int = AF_UNSPEC, table: int | None = None, cached: bool = False) -> bytes:
    """rtmsg + RTA_TABLE: with NETLINK_GET_STRICT_CHK the kernel dumps only
    that table (ip_valid_fib_dump_req / inet6_dump_fib). ``table=None``
    dumps every table. ``cached``: RTM_F_CLONED in rtm_flags asks for the
    route exceptions (PMTU, redirects: ``ip route show cache``) instead of
    the routes (inet_dump_fib's dump_exceptions, inet6_dump_fib)."""
    flags = RTM_F_CLONED if cached else 0
    if table is None:
        return RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, flags)
    # rtm_table holds 8 bits; RTA_TABLE carries the full 32-bit id.
    return RTMSG.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, 0, flags) + AttributeBuilder().add_u32(RTA_TABLE, table).build()


# --- neighbours -----------------------------------------------------------------
def decode_neighbour(buffer: Any, start: int, end: int, names: dict[int, str] | None = None) -> Neighbour:
    """RTM_NEWNEIGH/RTM_DELNEIGH payload -> :class:`Neighbour`."""
    if end - start < NDMSG.size:
        raise DecodeError(f"neighbour message of {end - start} bytes is shorter than struct ndmsg")
    family, ifindex, state, flags, neigh_type = NDMSG.unpack_from(buffer, start)
    table = parse_attributes(buffer, start + NDMSG.size, end)
    dst = table.get(NDA_DST)
    lladdr = table.get(NDA_LLADDR)
    protocol = table.get(NDA_PROTOCOL)
    cacheinfo = table.get(NDA_CACHEINFO)
    probes = table.get(NDA_PROBES)
    return Neighbour(
        family=family,
        ifindex=ifindex,
        dst=format_address(buffer, *dst) if dst is not None else None,
        lladdr=format_lladdr(buffer, *lladdr) if lladdr is not None else None,
        state=state,
        flags=flags,
        type=neigh_type,
        dev=names.get(ifindex) if names else None,
        protocol=buffer[protocol[0]] if protocol is not None and protocol[1] > protocol[0] else None,
        cacheinfo=NDA_CACHEINFO_STRUCT.unpack_from(buffer, cacheinfo[0]) if cacheinfo is not None and cacheinfo[1] - cacheinfo[0] >= NDA_CACHEINFO_STRUCT.size else None,
        probes=_u32(buffer, probes),
    )


def neighbour_dump_request(family: int = AF_UNSPEC, ifindex: int | None = None) -> bytes:
    """ndmsg + NDA_IFINDEX, which neigh_valid_dump_req() accepts as a filter."""
    payload = NDMSG.pack(family, 0, 0, 0, 0)
    if ifindex:
        payload += AttributeBuilder().add_u32(NDA_IFINDEX, ifindex).build()
    return payload


# --- rules ----------------------------------------------------------------------
def decode_rule(buffer: Any, start: int, end: int) -> Rule:
    """RTM_NEWRULE/RTM_DELRULE payload -> :class:`Rule`."""
    if end - start < FIB_RULE_HDR.size:
        raise DecodeError(f"rule message of {end - start} bytes is shorter than struct fib_rule_hdr")
    family, dst_len, src_len, tos, table, _res1, _res2, action, flags = FIB_RULE_HDR.unpack_from(buffer, start)
    attrs_table = parse_attributes(buffer, start + FIB_RULE_HDR.size, end)
    get = attrs_table.get
    table_span = get(FRA_TABLE)
    if table_span is not None:
        table = _u32(buffer, table_span)
    src = get(FRA_SRC)
    dst = get(FRA_DST)
    protocol = get(FRA_PROTOCOL)
    l3mdev = get(FRA_L3MDEV)
    ip_proto = get(FRA_IP_PROTO)
    tun_id = get(FRA_TUN_ID)
    gateway = get(RTA_GATEWAY)  # an old "nat" rule's map-to address
    return Rule(
        family=family,
        priority=_u32(buffer, get(FRA_PRIORITY)) or 0,
        action=action,
        table=table,
        src=format_address(buffer, *src) if src is not None else None,
        src_len=src_len,
        dst=format_address(buffer, *dst) if dst is not None else None,
        dst_len=dst_len,
        tos=tos,
        flags=flags,
        fwmark=_u32(buffer, get(FRA_FWMARK)),
        fwmask=_u32(buffer, get(FRA_FWMASK)),
        iifname=_string(buffer, attrs_table[FRA_IIFNAME]) if FRA_IIFNAME in attrs_table else None,
        oifname=_string(buffer, attrs_table[FRA_OIFNAME]) if FRA_OIFNAME in attrs_table else None,
        goto=_u32(buffer, get(FRA_GOTO)),
        protocol=_u8(buffer, protocol),
        suppress_prefixlen=_u32(buffer, get(FRA_SUPPRESS_PREFIXLEN)),
        suppress_ifgroup=_u32(buffer, get(FRA_SUPPRESS_IFGROUP)),
        l3mdev=bool(l3mdev is not None and l3mdev[1] > l3mdev[0] and buffer[l3mdev[0]]),
        uid_range=_pair(buffer, get(FRA_UID_RANGE), _UID_RANGE),
        ip_proto=buffer[ip_proto[0]] if ip_proto is not None and ip_proto[1] > ip_proto[0] else None,
        sport=_pair(buffer, get(FRA_SPORT_RANGE), _PORT_RANGE),
        dport=_pair(buffer, get(FRA_DPORT_RANGE), _PORT_RANGE),
        flow=_u32(buffer, get(FRA_FLOW)),
        tun_id=int.from_bytes(bytes(buffer[tun_id[0] : tun_id[0] + 8]), "big") if tun_id is not None and tun_id[1] - tun_id[0] >= 8 else None,
        nat_gateway=format_address(buffer, *gateway) if gateway is not None else None,
    )


#: struct fib_rule_uid_range {u32 start, end}; struct fib_rule_port_range {u16 start, end}
_UID_RANGE = struct.Struct("=II")
_PORT_RANGE = struct.Struct("=HH")


def _pair(buffer: Any, span: tuple[int, int] | None, layout: struct.Struct) -> tuple[int, int] | None:
    if span is None or span[1] - span[0] < layout.size:
        return None
    return layout.unpack_from(buffer, span[0])  # type: ignore[return-value]


def rule_dump_request(family: int = AF_UNSPEC) -> bytes:
    """fib_rule_hdr: fib_valid_dumprule_req() takes no other filter than the family."""
    return FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)

