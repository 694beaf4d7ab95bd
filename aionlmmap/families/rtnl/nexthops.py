"""Nexthop objects (RTM_NEWNEXTHOP / RTM_DELNEXTHOP / RTM_GETNEXTHOP,
Linux >= 5.3): :class:`NexthopObject`, its decoder and dump request.

Pure: imports neither asyncio nor socket.

A nexthop object is a gateway/device (or a blackhole) with an id, or a
group of such ids with weights; routes refer to one with ``nhid``
(RTA_NH_ID). ``to_json()`` prints what ``ip -j nexthop show`` prints,
keys in ``__print_nexthop_entry()``'s order.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ...attributes import parse_attributes
from ...errors import DecodeError
from ...address_text import ipv4_text, ipv6_text
from .constants import RT_SCOPE_UNIVERSE, RTPROT_UNSPEC, protocol_name, scope_name
from .objects import route_flag_names
from .route_values import USER_HZ
from .route_values import encap as route_encap

__all__ = ["NexthopObject", "decode_nexthop", "nexthop_dump_request", "NHMSG", "RTM_NEWNEXTHOP", "RTM_DELNEXTHOP", "RTM_GETNEXTHOP"]

RTM_NEWNEXTHOP = 104
RTM_DELNEXTHOP = 105
RTM_GETNEXTHOP = 106
#: struct nhmsg {u8 nh_family, nh_scope, nh_protocol, resvd; u32 nh_flags}
NHMSG = struct.Struct("=BBBxI")
#: struct nexthop_grp {u32 id; u8 weight; u8 resvd1; u16 resvd2}
NEXTHOP_GRP = struct.Struct("=IBxxx")

NHA_ID = 1
NHA_GROUP = 2
NHA_GROUP_TYPE = 3
NHA_BLACKHOLE = 4
NHA_OIF = 5
NHA_GATEWAY = 6
NHA_ENCAP_TYPE = 7
NHA_ENCAP = 8
NHA_FDB = 11
NHA_RES_GROUP = 12
NEXTHOP_GRP_TYPE_MPATH = 0
NEXTHOP_GRP_TYPE_RES = 1
# NHA_RES_GROUP members
NHA_RES_GROUP_BUCKETS = 1
NHA_RES_GROUP_IDLE_TIMER = 2
NHA_RES_GROUP_UNBALANCED_TIMER = 3
NHA_RES_GROUP_UNBALANCED_TIME = 4


@attrs.frozen
class NexthopObject:
    """A nexthop object (``ip nexthop``).

    >>> NexthopObject(id=1, family=2, gateway="192.0.2.2", oif=2, dev="eth0", scope=253).to_json()
    {'id': 1, 'gateway': '192.0.2.2', 'dev': 'eth0', 'scope': 'link', 'flags': []}
    """

    id: int
    family: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    protocol: int = RTPROT_UNSPEC
    flags: int = 0  #: RTNH_F_*
    group: tuple[tuple[int, int], ...] = ()  #: (id, weight) of each member, weight as ``ip`` shows it (nexthop_grp.weight + 1)
    group_type: int = NEXTHOP_GRP_TYPE_MPATH
    #: NHA_RES_GROUP of a resilient group: (buckets, idle_timer, unbalanced_timer, unbalanced_time), timers in seconds
    resilient: tuple[int, float, float, float] | None = None
    gateway: str | None = None
    oif: int | None = None
    dev: str | None = None
    blackhole: bool = False
    fdb: bool = False
    encap: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> int:
        """The kernel's identity of a nexthop object (``nexthop_find_by_id``)."""
        return self.id

    def to_json(self, details: bool = False) -> dict[str, Any]:
        """The object ``ip -j nexthop show`` (``details``: ``ip -j -d``) prints."""
        out: dict[str, Any] = {"id": self.id}
        if self.group:
            # print_nh_group(): the weight only when it is not 1
            out["group"] = [{"id": member} if weight == 1 else {"id": member, "weight": weight} for member, weight in self.group]
        if self.group_type != NEXTHOP_GRP_TYPE_MPATH:
            out["type"] = "resilient" if self.group_type == NEXTHOP_GRP_TYPE_RES else "<unknown type>"
        if self.resilient is not None:
            buckets, idle, unbalanced, unbalanced_time = self.resilient
            out["resilient_args"] = {"buckets": buckets, "idle_timer": idle, "unbalanced_timer": unbalanced, "unbalanced_time": unbalanced_time}
        for key, value in self.encap:
            out[key] = value
        if self.gateway is not None:
            out["gateway"] = self.gateway
        if self.oif:
            out["dev"] = self.dev or f"if{self.oif}"
        if self.scope != RT_SCOPE_UNIVERSE or details:
            out["scope"] = scope_name(self.scope)
        if self.blackhole:
            out["blackhole"] = None
        if self.protocol != RTPROT_UNSPEC or details:
            out["protocol"] = protocol_name(self.protocol)
        out["flags"] = route_flag_names(self.flags)
        if self.fdb:
            out["fdb"] = None
        return out


def _seconds(ticks: int) -> float:
    """__jiffies_to_tv() + print_tv(): clock ticks as seconds, printed %g."""
    seconds = ticks / USER_HZ
    return int(seconds) if seconds.is_integer() else seconds


def decode_nexthop(buffer: Any, start: int, end: int, names: dict[int, str] | None = None) -> NexthopObject:
    """RTM_NEWNEXTHOP/RTM_DELNEXTHOP payload -> :class:`NexthopObject`."""
    if end - start < NHMSG.size:
        raise DecodeError(f"nexthop message of {end - start} bytes is shorter than struct nhmsg")
    family, scope, protocol, flags = NHMSG.unpack_from(buffer, start)
    table = parse_attributes(buffer, start + NHMSG.size, end)
    get = table.get

    def u32(attr: int) -> int | None:
        span = get(attr)
        if span is None:
            return None
        if span[1] - span[0] < 4:
            raise DecodeError(f"nexthop attribute {attr} of {span[1] - span[0]} bytes, expected a u32")
        return int.from_bytes(bytes(buffer[span[0] : span[0] + 4]), "little")

    group: list[tuple[int, int]] = []
    span = get(NHA_GROUP)
    if span is not None:
        for offset in range(span[0], span[1] - NEXTHOP_GRP.size + 1, NEXTHOP_GRP.size):
            member, weight = NEXTHOP_GRP.unpack_from(buffer, offset)
            group.append((member, weight + 1))
    group_type = NEXTHOP_GRP_TYPE_MPATH
    span = get(NHA_GROUP_TYPE)
    if span is not None and span[1] - span[0] >= 2:
        group_type = int.from_bytes(bytes(buffer[span[0] : span[0] + 2]), "little")
    resilient = None
    span = get(NHA_RES_GROUP)
    if span is not None:
        members = parse_attributes(buffer, span[0], span[1])

        def number(attr: int, size: int) -> int:
            member = members.get(attr)
            return int.from_bytes(bytes(buffer[member[0] : member[0] + size]), "little") if member is not None and member[1] - member[0] >= size else 0

        resilient = (number(NHA_RES_GROUP_BUCKETS, 2), _seconds(number(NHA_RES_GROUP_IDLE_TIMER, 4)),
                     _seconds(number(NHA_RES_GROUP_UNBALANCED_TIMER, 4)), _seconds(number(NHA_RES_GROUP_UNBALANCED_TIME, 8)))  # fmt: skip
    gateway = None
    span = get(NHA_GATEWAY)
    if span is not None:
        size = span[1] - span[0]
        raw = bytes(buffer[span[0] : span[1]])
        gateway = ipv4_text(raw) if size == 4 else ipv6_text(raw) if size == 16 else raw.hex(":")
    encap: tuple[tuple[str, Any], ...] = ()
    span = get(NHA_ENCAP)
    encap_type = get(NHA_ENCAP_TYPE)
    if span is not None and encap_type is not None:
        encap = route_encap(int.from_bytes(bytes(buffer[encap_type[0] : encap_type[0] + 2]), "little"), bytes(buffer[span[0] : span[1]]))
    oif = u32(NHA_OIF)
    identifier = u32(NHA_ID)
    return NexthopObject(
        id=identifier or 0,
        family=family,
        scope=scope,
        protocol=protocol,
        flags=flags,
        group=tuple(group),
        group_type=group_type,
        resilient=resilient,
        gateway=gateway,
        oif=oif,
        dev=(names.get(oif) if names else None) if oif else None,
        blackhole=NHA_BLACKHOLE in table,
        fdb=NHA_FDB in table,
        encap=encap,
    )


def nexthop_dump_request(family: int = 0) -> bytes:
    """nhmsg: ``ip nexthop show`` asks for every nexthop of ``family``
    (AF_UNSPEC: all), with no other filter (nh_valid_dump_req())."""
    return NHMSG.pack(family, 0, 0, 0)
