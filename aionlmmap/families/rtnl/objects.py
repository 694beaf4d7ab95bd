"""rtnetlink values: :class:`Link`, :class:`Address`, :class:`Route`,
:class:`Neighbour`, :class:`Rule` and the monitor's :class:`Event`.

Pure: imports neither asyncio nor socket.

Every object is an ``attrs.frozen`` value decoded eagerly from the message
(addresses as text, interface indexes resolved to names when the client knows
them), so it stays valid after its ring frame goes back to the kernel.
``to_json()`` returns what ``ip -j`` prints for the fields supported here,
with iproute2's key names and value formats (see docs/rtnl.md), and ``key``
is the identity the kernel uses to tell two objects of a kind apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

from ..._extensions import speedups as _speedups
from .link_values import LinkDetails, LinkStats
from .constants import (
    ADDRESS_FLAG_NAMES,
    AF_INET,
    AF_INET6,
    FAMILY_NAMES,
    FIB_RULE_IIF_DETACHED,
    FIB_RULE_INVERT,
    FIB_RULE_OIF_DETACHED,
    FIB_RULE_UNRESOLVED,
    RTN_NAT,
    RTPROT_KERNEL,
    group_name,
    ip_protocol_name,
    FR_ACT_GOTO,
    FR_ACT_NOP,
    FR_ACT_TO_TBL,
    HOST_PREFIXLEN,
    IFA_F_PERMANENT,
    IFF_RUNNING,
    IFF_POINTOPOINT,
    IFF_UP,
    LINK_FLAG_ORDER,
    LINK_TYPE_NAMES,
    LINKMODE_NAMES,
    NEIGH_STATE_NAMES,
    NTF_EXT_LEARNED,
    NTF_OFFLOADED,
    NTF_PROXY,
    NTF_ROUTER,
    OPERSTATE_NAMES,
    PROTOCOL_NAMES,
    ROUTE_FLAG_NAMES,
    ROUTE_PREF_NAMES,
    ROUTE_TYPE_NAMES,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTM_F_CLONED,
    RTN_UNICAST,
    RTPROT_BOOT,
    SCOPE_NAMES,
    TABLE_NAMES,
    CACHE_FLAG_NAMES,
    protocol_name,
    realm_name,
    route_type_name,
    scope_name,
    table_name,
)

__all__ = ["Link", "Address", "Route", "RouteExtra", "route_extra", "Nexthop", "Neighbour", "Rule", "Event", "link_flag_names", "route_flag_names"]


def link_flag_names(flags: int, lower_down: bool = False) -> list[str]:
    """print_link_flags(): NO-CARRIER first (UP without RUNNING), the IFF_*
    names in iproute2's order, then M-DOWN when the lower device is down."""
    names = ["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING else []
    names += [name for bit, name in LINK_FLAG_ORDER if flags & bit]
    if lower_down:
        names.append("M-DOWN")
    return names


_ROUTE_FLAG_CACHE: dict[int, tuple[str, ...]] = {}
# rtm_protocol and rtm_scope are u8: Route.to_json() spells them by tuple
# index, which cost a few hundred instructions less per route than a
# dict.get() call (callgrind, CPython 3.11).
_PROTOCOL_TEXT = tuple(PROTOCOL_NAMES.get(number) or str(number) for number in range(256))
_SCOPE_TEXT = tuple(SCOPE_NAMES.get(number) or str(number) for number in range(256))


def route_flag_names(flags: int) -> list[str]:
    """print_rt_flags() names of RTNH_F_* / RTM_F_* bits."""
    names = _ROUTE_FLAG_CACHE.get(flags)
    if names is None:
        names = _ROUTE_FLAG_CACHE[flags] = tuple(name for bit, name in ROUTE_FLAG_NAMES if flags & bit)
    return list(names)


def _hashable(value: Any) -> Any:
    """``value`` as something a key tuple can hold (dicts and lists of
    decoded attributes become tuples)."""
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    return value


# RTNH_F_ONLINK and RTNH_F_PERVASIVE are configuration; the other RTNH_F_*
# bits are state the kernel changes by itself (RTNH_COMPARE_MASK).
_NEXTHOP_IDENTITY_FLAGS = 0x6


@attrs.frozen
class Link:
    """A network interface (RTM_NEWLINK).

    >>> async for link in nl.links():
    ...     print(link.ifindex, link.ifname, link.is_up, link.to_json()["operstate"])
    """

    ifindex: int
    ifname: str
    flags: int = 0  #: IFF_* bits
    mtu: int | None = None
    qdisc: str | None = None
    operstate: int | None = None  #: IF_OPER_*
    linkmode: int | None = None
    group: int | None = None
    txqlen: int | None = None
    link_type: int = 1  #: ARPHRD_*
    address: str | None = None  #: link-layer address, "aa:bb:..."
    broadcast: str | None = None
    kind: str | None = None  #: IFLA_INFO_KIND: "veth", "bridge", "vxlan", ...
    alias: str | None = None
    link_ifindex: int | None = None  #: IFLA_LINK: the lower device (veth peer, macvlan parent)
    link_netnsid: int | None = None  #: set when the lower device lives in another namespace
    master_ifindex: int | None = None
    link: str | None = None  #: name of ``link_ifindex`` when it is in this namespace
    master: str | None = None  #: name of ``master_ifindex``
    lower_up: bool | None = None  #: whether the ``link`` device is up (iproute2's M-DOWN)
    altnames: tuple[str, ...] = ()  #: IFLA_PROP_LIST's IFLA_ALT_IFNAME names
    permaddr: str | None = None  #: IFLA_PERM_ADDRESS when it differs from ``address``
    proto_down: bool = False  #: IFLA_PROTO_DOWN
    #: IFLA_STATS64: in notifications, and in dumps that ask for statistics
    #: (``link_dump_request(stats=True)``). Counters move all the time, so
    #: they take no part in equality: a link is "changed" when its
    #: configuration changes, not its traffic.
    stats: LinkStats | None = attrs.field(default=None, eq=False)
    details: LinkDetails | None = None  #: what ``ip -d link`` adds

    @property
    def key(self) -> int:
        return self.ifindex

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    def to_json(self, details: bool = False, stats: int = 0) -> dict[str, Any]:
        """The object ``ip -j link show`` prints for this link (``details``:
        ``ip -d``; ``stats``: 1 for ``ip -s``, 2 for ``ip -s -s``), keys in
        print_linkinfo()'s order."""
        out: dict[str, Any] = {"ifindex": self.ifindex}
        link_ifindex = self.link_ifindex
        if link_ifindex is not None:
            if link_ifindex == 0:
                out["link"] = None
            elif self.link_netnsid is not None:
                out["link_index"] = link_ifindex
            else:
                out["link"] = self.link or f"if{link_ifindex}"
        out["ifname"] = self.ifname
        out["flags"] = link_flag_names(self.flags, self.lower_up is False and self.link_netnsid is None)
        if self.mtu is not None:
            out["mtu"] = self.mtu
        if self.qdisc is not None:
            out["qdisc"] = self.qdisc
        if self.master_ifindex is not None:
            out["master"] = self.master or f"if{self.master_ifindex}"
        if self.operstate is not None:
            out["operstate"] = OPERSTATE_NAMES[self.operstate] if self.operstate < len(OPERSTATE_NAMES) else str(self.operstate)
        if self.linkmode is not None:
            out["linkmode"] = LINKMODE_NAMES[self.linkmode] if self.linkmode < len(LINKMODE_NAMES) else str(self.linkmode)
        if self.group is not None:
            out["group"] = "default" if self.group == 0 else str(self.group)
        if self.txqlen is not None:
            out["txqlen"] = self.txqlen
        out["link_type"] = LINK_TYPE_NAMES.get(self.link_type) or f"[{self.link_type}]"
        if self.address is not None:
            out["address"] = self.address
        if self.broadcast is not None:
            if self.flags & IFF_POINTOPOINT:
                out["link_pointtopoint"] = True
            out["broadcast"] = self.broadcast
        if self.permaddr is not None:
            out["permaddr"] = self.permaddr
        if self.link_netnsid is not None:
            out["link_netnsid"] = self.link_netnsid
        if self.proto_down:
            out["proto_down"] = True
        if details and self.details is not None:
            out.update(self.details.items())
        if self.alias:
            out["ifalias"] = self.alias
        if stats and self.stats is not None:
            out["stats64"] = self.stats.to_json(stats)
        if self.altnames:
            out["altnames"] = list(self.altnames)
        return out


#: clock_t ticks per second (USER_HZ: what sysconf(_SC_CLK_TCK) says on Linux)
USER_HZ = 100
#: ifa_valid/ifa_prefered of an address that never expires
INFINITY_LIFE_TIME = 0xFFFFFFFF


def _finite(lifetime: int | None) -> bool | None:
    """A remaining lifetime as equality sees it: finite or not (or absent)."""
    return None if lifetime is None else lifetime != INFINITY_LIFE_TIME


@attrs.frozen
class Address:
    """An interface address (RTM_NEWADDR).

    >>> async for addr in nl.addresses(family=4):
    ...     print(addr.dev, f"{addr.local}/{addr.prefixlen}")
    """

    family: int
    prefixlen: int
    ifindex: int
    local: str  #: IFA_LOCAL, or IFA_ADDRESS when the kernel sends only that (IPv6)
    address: str | None = None  #: IFA_ADDRESS: the peer on point-to-point links
    scope: int = 0
    flags: int = 0  #: IFA_F_* (the 32-bit IFA_FLAGS when present)
    broadcast: str | None = None
    anycast: str | None = None
    label: str | None = None
    #: What is left of the lifetimes (IFA_CACHEINFO), in seconds: a
    #: countdown, so equality sees only whether each is finite, and
    #: ``tstamp`` tells when they were set (the same address dumped a
    #: second later is the same address; one whose lifetimes were set
    #: again is not).
    valid_lft: int | None = attrs.field(default=None, eq=_finite)
    preferred_lft: int | None = attrs.field(default=None, eq=_finite)
    dev: str | None = None
    metric: int | None = None  #: IFA_RT_PRIORITY: the metric of the address's prefix route
    #: IFA_CACHEINFO tstamp: when the address was last updated, in
    #: hundredths of a second since boot (set_ifa_lifetime, inet6_addr_modify)
    tstamp: int | None = attrs.field(default=None, repr=False)

    @property
    def key(self) -> tuple[Any, ...]:
        # The kernel's identity of an address: IPv6 allows one of each
        # address per device whatever the prefix length (ipv6_chk_same_addr);
        # IPv4 matches local, prefix length and the peer's prefix
        # (find_matching_ifa), so one local address may carry several peers.
        if self.family == AF_INET6:
            return (self.family, self.ifindex, self.local)
        return (self.family, self.ifindex, self.local, self.prefixlen, self.address)

    def to_json(self) -> dict[str, Any]:
        """One ``addr_info`` entry of ``ip -j address show``."""
        out: dict[str, Any] = {"family": FAMILY_NAMES.get(self.family, str(self.family)), "local": self.local}
        if self.address is not None and self.address != self.local:
            out["address"] = self.address
        out["prefixlen"] = self.prefixlen
        if self.metric is not None:
            out["metric"] = self.metric
        if self.broadcast is not None:
            out["broadcast"] = self.broadcast
        if self.anycast is not None:
            out["anycast"] = self.anycast
        out["scope"] = scope_name(self.scope)
        flags = self.flags
        for bit, name, name6 in ADDRESS_FLAG_NAMES:
            if bit == IFA_F_PERMANENT:
                if not flags & bit:
                    out["dynamic"] = True
            elif flags & bit:
                out[name6 if self.family == AF_INET6 else name] = True
            flags &= ~bit
        if flags:
            out["ifa_flags"] = f"{flags:02x}"  # bits iproute2 has no name for
        if self.label is not None:
            out["label"] = self.label
        if self.valid_lft is not None:
            out["valid_life_time"] = self.valid_lft
            out["preferred_life_time"] = self.preferred_lft
        return out


@attrs.frozen
class Nexthop:
    """One path of a multipath route (struct rtnexthop and its attributes)."""

    ifindex: int
    gateway: str | None = None
    weight: int = 1  #: rtnh_hops + 1, as ``ip route`` shows it
    flags: int = 0
    dev: str | None = None
    via: tuple[str, str] | None = None  #: RTA_VIA: (family name, address), a gateway of another family
    flow: int | None = None  #: RTA_FLOW: realms, ``from << 16 | to``

    def to_json(self) -> dict[str, Any]:
        """One entry of a route's ``nexthops`` (print_rta_multipath())."""
        out: dict[str, Any] = {}
        if self.gateway is not None:
            out["gateway"] = self.gateway
        if self.via is not None:
            out["via"] = {"family": self.via[0], "host": self.via[1]}
        if self.flow is not None:
            out["flow"] = flow_json(self.flow)
        out["dev"] = self.dev or f"if{self.ifindex}"
        out["weight"] = self.weight
        out["flags"] = route_flag_names(self.flags)
        return out


def flow_json(flow: int) -> dict[str, str]:
    """print_rta_flow(): RTA_FLOW's realms, ``from`` only when set."""
    source, destination = flow >> 16, flow & 0xFFFF
    out = {"from": realm_name(source)} if source else {}
    out["to"] = realm_name(destination)
    return out


@attrs.frozen
class RouteExtra:
    """The attributes of a route that most routes lack (see ``Route.extra``)."""

    nhid: int | None = None  #: RTA_NH_ID: the nexthop object the route uses
    via: tuple[str, str] | None = None  #: RTA_VIA: (family name, address), a gateway of another family
    flow: int | None = None  #: RTA_FLOW: realms, ``from << 16 | to``
    mark: int | None = None  #: RTA_MARK (route lookups only)
    uid: int | None = None  #: RTA_UID (route lookups only)
    #: RTA_CACHEINFO rta_expires in seconds (IPv6 routes with a lifetime,
    #: cached routes). A countdown, so it takes no part in equality: the
    #: same route dumped a second later is the same route.
    expires: int | None = attrs.field(default=None, eq=False)
    error: int | None = None  #: RTA_CACHEINFO rta_error when not 0
    metrics: tuple[tuple[str, Any], ...] = ()  #: RTA_METRICS as ``ip -j`` names them: (("mtu", 1400), ("ecn", None), ...)
    iif: str | None = None  #: RTA_IIF's interface name (route lookups, multicast)
    encap: tuple[tuple[str, Any], ...] = ()  #: RTA_ENCAP as ``ip -j`` prints it: (("encap", "ip"), ("id", 5), ("dst", ...), ...)
    #: RTA_CACHEINFO's counters of a cached route (a route exception, or a
    #: route lookup's answer), when not 0: rta_clntref (the dst's
    #: references, ``ip -s``'s "users"), rta_used ("used") and rta_lastuse
    #: in seconds ("age"). rt6_fill_node() sends them as 0 for a FIB
    #: route (no dst). Counters: no part of equality.
    users: int | None = attrs.field(default=None, eq=False)
    used: int | None = attrs.field(default=None, eq=False)
    age: int | None = attrs.field(default=None, eq=False)
    #: Whether any of them prints before "flags" (nhid, encap, via), which
    #: takes to_json()'s general path; the others are appended to the fast one.
    early: bool = attrs.field(default=False, eq=False, repr=False)
    cache: tuple[str, ...] | None = attrs.field(default=None, eq=False, repr=False)  # to_json_items()' own use

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "early", self.nhid is not None or self.via is not None or bool(self.encap))


_NO_EXTRA = RouteExtra()
_EXTRAS: dict[tuple[Any, ...], RouteExtra] = {}
_EXTRAS_MAX = 4096


def route_extra(nhid: int | None = None, via: tuple[str, str] | None = None, flow: int | None = None, mark: int | None = None,
                uid: int | None = None, expires: int | None = None, error: int | None = None, metrics: tuple[tuple[str, Any], ...] = (),
                iif: str | None = None, encap: tuple[tuple[str, Any], ...] = (), users: int | None = None, used: int | None = None,
                age: int | None = None) -> RouteExtra:  # fmt: skip
    """``RouteExtra(...)``, shared between routes with the same values: a
    table whose routes all carry ``mtu 1400`` then makes one, not one per
    route (attrs' frozen ``__init__`` costs a call per field)."""
    key = (nhid, via, flow, mark, uid, expires, error, metrics, iif, encap, users, used, age)
    extra = _EXTRAS.get(key)
    if extra is None:
        extra = RouteExtra(nhid, via, flow, mark, uid, expires, error, metrics, iif, encap, users, used, age)
        if len(_EXTRAS) < _EXTRAS_MAX:
            _EXTRAS[key] = extra
    return extra


# Slotted, the hot object of a 100,000-route dump: CPython 3.11 reads a slot
# with a specialized LOAD_ATTR_SLOT, while on a frozen dict-backed instance
# (attrs' __init__ fills it through self.__dict__, a key-sharing dict) every
# read took the generic lookup and to_json() ran 3x slower. Decoders do not
# call the slotted attrs __init__ (one object.__setattr__ call per field):
# they build routes with _build_route() or generated layout code, which
# write the slots through _RouteUnderConstruction (below).
@attrs.frozen
class Route:
    """A route (RTM_NEWROUTE).

    >>> async for route in nl.routes(table="all"):
    ...     print(route.dst, route.dst_len, route.gateway, route.dev, route.table)
    """

    family: int
    table: int
    dst: str | None  #: None for the default route
    dst_len: int = 0
    type: int = RTN_UNICAST
    protocol: int = RTPROT_BOOT
    scope: int = RT_SCOPE_UNIVERSE
    flags: int = 0
    tos: int = 0
    priority: int | None = None  #: RTA_PRIORITY, shown as "metric"
    gateway: str | None = None
    oif: int | None = None
    dev: str | None = None
    prefsrc: str | None = None
    src: str | None = None
    src_len: int = 0
    pref: int | None = None  #: RTA_PREF (IPv6 router preference)
    nexthops: tuple[Nexthop, ...] = ()
    #: The attributes most routes lack (RTA_METRICS, RTA_CACHEINFO's
    #: expires, RTA_ENCAP, ...), or None when the route has none of them:
    #: a big table's routes then cost one slot for all of them. Read them
    #: through the properties below (``route.metrics``, ``route.expires``...).
    extra: RouteExtra | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What tells this route apart from every other one the kernel
        holds: its :attr:`replace_key` plus what the kernel compares between
        routes that share one. IPv4 keeps several aliases per (table,
        prefix, tos, priority) (``ip route append``/``prepend``) and tells
        them apart by type and fib_info (``fib_table_insert``'s fa_match;
        ``fib_find_info``/``nh_comp`` compare protocol, scope, prefsrc,
        metrics and every nexthop's device, gateway, weight and flags except
        the RTNH_F_DEAD/LINKDOWN/OFFLOAD/TRAP state the kernel flips on its
        own); IPv6 keeps one route per nexthop at one metric (one
        ``fe80::/64`` per device). State flags stay out: a route whose
        nexthop went dead is the same route. A route using a nexthop object
        (``nhid``) is known by that object's id, not by the gateway and
        device it expands to (``nh_comp``/``rt6_duplicate_nexthop`` compare
        the nexthop pointers): ``ip nexthop replace`` changes the expansion
        of the same route (``nexthop_replace_notify``)."""
        nhid = self.nhid
        if nhid is not None:
            hops: tuple[Any, ...] = (None, None, 0, ())
        else:
            hops = (self.oif, self.gateway, self.flags & _NEXTHOP_IDENTITY_FLAGS,
                    tuple((hop.ifindex, hop.gateway, hop.weight, hop.flags & _NEXTHOP_IDENTITY_FLAGS) for hop in self.nexthops))  # fmt: skip
        return (
            self.family, self.table, self.dst, self.dst_len, self.src, self.src_len, self.tos, self.priority,
            self.type, self.protocol, self.scope, self.prefsrc, *hops,
            # RTA_NH_ID, RTA_METRICS, RTA_FLOW, RTA_VIA, RTA_ENCAP: all part
            # of fib_info's identity (fib_find_info).
            nhid, _hashable(self.metrics), self.flow, _hashable(self.via), _hashable(self.encap),
        )  # fmt: skip

    @property
    def replace_key(self) -> tuple[Any, ...]:
        """The kernel's key of a route: what ``ip route replace``/``change``
        (NLM_F_REPLACE) replaces and ``ip route add`` refuses to add twice.
        IPv4 (``fib_table_insert``, ``fib_find_alias``): table, prefix, tos
        and priority; IPv6 (``fib6_add``, ``fib6_add_rt2``): table,
        destination and source prefixes and metric. Several routes may share
        one (see :attr:`key`)."""
        if self.family == AF_INET6:
            return (self.family, self.table, self.dst, self.dst_len, self.src, self.src_len, self.priority)
        return (self.family, self.table, self.dst, self.dst_len, self.tos, self.priority)

    @property
    def metric(self) -> int | None:
        return self.priority

    @property
    def rare(self) -> bool:
        """Whether the route has any attribute of :class:`RouteExtra`."""
        return self.extra is not None

    nhid = property(lambda self: self.extra.nhid if self.extra is not None else None, doc="RTA_NH_ID: the nexthop object the route uses")
    via = property(lambda self: self.extra.via if self.extra is not None else None, doc="RTA_VIA: (family name, address)")
    flow = property(lambda self: self.extra.flow if self.extra is not None else None, doc="RTA_FLOW: realms, from << 16 | to")
    mark = property(lambda self: self.extra.mark if self.extra is not None else None, doc="RTA_MARK")
    uid = property(lambda self: self.extra.uid if self.extra is not None else None, doc="RTA_UID")
    expires = property(lambda self: self.extra.expires if self.extra is not None else None, doc="seconds left of the route's lifetime")
    error = property(lambda self: self.extra.error if self.extra is not None else None, doc="RTA_CACHEINFO rta_error")
    metrics = property(lambda self: self.extra.metrics if self.extra is not None else (), doc="RTA_METRICS as ip -j names them")
    iif = property(lambda self: self.extra.iif if self.extra is not None else None, doc="RTA_IIF's interface name")
    encap = property(lambda self: self.extra.encap if self.extra is not None else (), doc="RTA_ENCAP as ip -j prints it")

    def to_json(self, details: bool = False, stats: bool = False) -> dict[str, Any]:
        """The object ``ip -j route show table all`` prints for this route
        (``details``: ``ip -j -d``, which also prints the default type,
        table, protocol and scope; ``stats``: ``ip -j -s``, which adds a
        cached route's "users", "used" and "age"), keys in print_route()'s
        order."""
        # Runs once per route of a dump, so it is written for CPython's
        # bytecode: a field that is usually None is tested where it is read
        # (`if self.x is not None` is one POP_JUMP_IF_NONE) and read again
        # only when set; fields usually set are read once into a local.
        extra = self.extra
        if details or (extra is not None and (extra.early or stats)):
            return self._to_json_full(details, stats)
        route_type = self.type
        out: dict[str, Any] = {} if route_type == RTN_UNICAST else {"type": ROUTE_TYPE_NAMES[route_type] if route_type < 12 else str(route_type)}
        family = self.family
        host = 32 if family == AF_INET else 128 if family == AF_INET6 else None  # HOST_PREFIXLEN, inlined
        dst = self.dst
        dst_len = self.dst_len
        if dst is None:
            out["dst"] = f"0/{dst_len}" if dst_len else "default"
        elif dst_len == host:
            out["dst"] = dst
        else:
            out["dst"] = f"{dst}/{dst_len}"
        if self.src is not None:
            out["from"] = self.src if self.src_len == host else f"{self.src}/{self.src_len}"
        elif self.src_len:
            out["src"] = f"0/{self.src_len}"
        if self.tos:
            out["tos"] = f"0x{self.tos:02x}"
        if self.gateway is not None:
            out["gateway"] = self.gateway
        oif = self.oif
        if oif is not None:
            out["dev"] = self.dev or f"if{oif}"
        table = self.table
        if table != RT_TABLE_MAIN and table:
            out["table"] = TABLE_NAMES.get(table) or str(table)
        flags = self.flags
        if not flags & RTM_F_CLONED:
            protocol = self.protocol
            if protocol != RTPROT_BOOT:
                out["protocol"] = _PROTOCOL_TEXT[protocol] if 0 <= protocol < 256 else str(protocol)
            scope = self.scope
            if scope != RT_SCOPE_UNIVERSE:
                out["scope"] = _SCOPE_TEXT[scope] if 0 <= scope < 256 else str(scope)
        elif family == AF_INET:
            return self._to_json_full(False)  # a cached IPv4 route prints its "cache" flags
        if self.prefsrc is not None:
            out["prefsrc"] = self.prefsrc
        if self.priority is not None:
            out["metric"] = self.priority
        out["flags"] = route_flag_names(flags) if flags else []
        if extra is not None:
            # only keys print_route() prints after "flags" (extra.early is False)
            _late_keys(out, extra)
        if self.pref is not None:
            out["pref"] = ROUTE_PREF_NAMES.get(self.pref) or str(self.pref)
        if self.nexthops:
            out["nexthops"] = [nexthop.to_json() for nexthop in self.nexthops]
        return out

    def _to_json_full(self, details: bool, stats: bool = False) -> dict[str, Any]:
        """to_json() of a route with rare attributes, or with details."""
        # dict() of the pairs keeps a repeated key where it came first, with
        # its last value: what json.loads() makes of ip's own output.
        return dict(self.to_json_items(details, stats=stats))

    def to_json_items(self, details: bool = False, nh_info: dict[str, Any] | None = None, stats: bool = False) -> list[tuple[str, Any]]:
        """Every key print_route() prints, in its order, as (key, value)
        pairs. A key may repeat: ``ip -j`` prints an ``encap ip`` route's
        tunnel ``dst`` (and ``src``, ``tos``) after the route's own, so its
        JSON has two ``"dst"`` members; to_json() keeps one, these pairs
        both (``aionlmmap dump routes --json`` writes them as ip does).
        ``nh_info``: with ``details``, ``ip -j -d route`` shows the nexthop
        object of a route with ``nhid`` (its ``to_json(details=True)``)."""
        extra = self.extra
        if extra is None:
            # to_json() handles these routes itself, except a cached IPv4
            # one, which it sends here for its "cache" key
            if not details and not (self.flags & RTM_F_CLONED and self.family == AF_INET):
                return list(self.to_json().items())
            extra = _NO_EXTRA
        route_type = self.type
        out = _Pairs()
        if route_type != RTN_UNICAST or details:
            out["type"] = route_type_name(route_type)
        host = HOST_PREFIXLEN.get(self.family)
        dst, dst_len = self.dst, self.dst_len
        out["dst"] = ("default" if not dst_len else f"0/{dst_len}") if dst is None else dst if dst_len == host else f"{dst}/{dst_len}"
        if self.src is not None:
            out["from"] = self.src if self.src_len == host else f"{self.src}/{self.src_len}"
        elif self.src_len:
            out["src"] = f"0/{self.src_len}"
        if extra.nhid is not None:
            out["nhid"] = extra.nhid
        for key, value in extra.encap:
            out[key] = value
        if self.tos:
            out["tos"] = f"0x{self.tos:02x}"
        if self.gateway is not None:
            out["gateway"] = self.gateway
        if extra.via is not None:
            out["via"] = {"family": extra.via[0], "host": extra.via[1]}
        if self.oif is not None:
            out["dev"] = self.dev or f"if{self.oif}"
        table = self.table
        if table and (table != RT_TABLE_MAIN or details):
            out["table"] = table_name(table)
        flags = self.flags
        if not flags & RTM_F_CLONED:
            if self.protocol != RTPROT_BOOT or details:
                out["protocol"] = protocol_name(self.protocol)
            if self.scope != RT_SCOPE_UNIVERSE or details:
                out["scope"] = scope_name(self.scope)
        if self.prefsrc is not None:
            out["prefsrc"] = self.prefsrc
        if self.priority is not None:
            out["metric"] = self.priority
        out["flags"] = route_flag_names(flags)
        if flags & RTM_F_CLONED and self.family == AF_INET:
            extra = attrs.evolve(extra, cache=tuple(name for bit, name in CACHE_FLAG_NAMES if flags & bit))
        _late_keys(out, extra, stats)
        if self.pref is not None:
            out["pref"] = ROUTE_PREF_NAMES.get(self.pref) or str(self.pref)
        if nh_info is not None and details and extra.nhid is not None:
            out["nh_info"] = nh_info
        if self.nexthops:
            out["nexthops"] = [nexthop.to_json() for nexthop in self.nexthops]
        return out.items


def _late_keys(out: Any, extra: RouteExtra, stats: bool = False) -> None:
    """The keys print_route() prints between "flags" and "pref"
    (``stats``: with ``ip -s``, print_rta_cacheinfo()'s counters)."""
    if extra.mark:
        out["mark"] = extra.mark
    if extra.flow is not None:
        out["flow"] = flow_json(extra.flow)
    if extra.uid is not None:
        out["uid"] = extra.uid
    if extra.cache is not None:
        out["cache"] = list(extra.cache)
    if extra.expires is not None:
        out["expires"] = extra.expires
    if extra.error is not None:
        out["error"] = extra.error
    if stats:
        # print_rta_cacheinfo(): each only when not 0, in this order
        if extra.users is not None:
            out["users"] = extra.users
        if extra.used is not None:
            out["used"] = extra.used
        if extra.age is not None:
            out["age"] = extra.age
    if extra.metrics:
        out["metrics"] = [dict(extra.metrics)]  # a new dict: callers may change it
    if extra.iif is not None:
        out["iif"] = extra.iif


class _Pairs:
    """``pairs[key] = value`` appends: to_json_items() reads like to_json()."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.items.append((key, value))


class _RouteUnderConstruction(Route):
    """A Route whose slots can still be written: the decoders' way to build
    a :class:`Route` without attrs' frozen ``__init__``.

    attrs' ``__init__`` of a frozen slotted class sets each field with a
    call to ``object.__setattr__`` (the class's own ``__setattr__`` raises).
    This subclass adds no slot and restores the plain ``__setattr__`` *and*
    ``__delattr__``: both live in the one type slot ``tp_setattro``, which
    CPython keeps generic (and STORE_ATTR then specializes to a direct slot
    store) only when neither is overridden. A builder makes an empty one
    (``__init__`` is object's: no attrs ``__init__``, and ``cls()`` is
    cheaper than ``object.__new__(cls)``), writes every slot with plain
    stores, then assigns ``__class__ = Route``; CPython allows that because
    the two layouts are the same (``object_set_class`` /
    ``compatible_for_assignment``), and from then on the object is an
    ordinary frozen Route. See :func:`_build_route`; the learned route
    layouts generate the same sequence.
    """

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__
    __init__ = object.__init__


#: Route's fields in attrs order (the order of its __init__ parameters).
_ROUTE_FIELDS: tuple[str, ...] = tuple(field.name for field in attrs.fields(Route))


def _route_builder_source(name: str, parameters: str, values: dict[str, str], prelude: str = "") -> str:
    """Source of a function ``name(parameters)`` that returns a Route whose
    field ``f`` is the expression ``values[f]``: every slot written once
    (a missing field raises KeyError here, not AttributeError on a read
    later), then the object becomes a Route. ``prelude`` (indented code)
    runs first and may ``return`` early. Globals it needs:
    ``_Building`` and ``_Route`` (_ROUTE_BUILDER_GLOBALS)."""
    lines = [f"def {name}({parameters}):\n", prelude, "    route = _Building()\n"]
    lines += [f"    route.{field} = {values[field]}\n" for field in _ROUTE_FIELDS]
    lines.append("    route.__class__ = _Route\n    return route\n")
    return "".join(lines)


_ROUTE_BUILDER_GLOBALS: dict[str, Any] = {"_Building": _RouteUnderConstruction, "_Route": Route}


def _compile_build_route() -> Callable[..., Route]:
    namespace = dict(_ROUTE_BUILDER_GLOBALS)
    # The fields after ``nexthops`` (rare attributes) keep their defaults
    # when not given, so callers that know none of them pass 18 values.
    rare_from = _ROUTE_FIELDS.index("nexthops") + 1
    parameters = [*_ROUTE_FIELDS[:rare_from], *(f"{field.name}={field.default!r}" for field in attrs.fields(Route)[rare_from:])]
    source = _route_builder_source("_build_route", ", ".join(parameters), {field: field for field in _ROUTE_FIELDS})
    exec(compile(source, "<_build_route>", "exec"), namespace)  # noqa: S102 - generated from Route's own field names
    return namespace["_build_route"]  # type: ignore[no-any-return]


#: ``_build_route(family, table, dst, dst_len, type, protocol, scope, flags,
#: tos, priority, gateway, oif, dev, prefsrc, src, src_len, pref, nexthops,
#: extra=None)``:
#: the same Route as ``Route(...)`` with every argument given positionally,
#: about 4x cheaper (no frozen __setattr__ per field).
_build_route: Callable[..., Route] = _compile_build_route()

# The compiled twins (aionlmmap/_speedups_routes.pxi: the dicts built in C)
# take the methods' place unless pure Python is selected
# (aionlmmap._extensions); the definitions above stay the reference.
_pure_route_to_json = Route.to_json
_pure_nexthop_to_json = Nexthop.to_json
if _speedups is not None:
    Route.to_json = _speedups.route_to_json  # type: ignore[method-assign]
    Nexthop.to_json = _speedups.nexthop_to_json  # type: ignore[method-assign]


@attrs.frozen
class Neighbour:
    """A neighbour table entry (RTM_NEWNEIGH): ARP or NDP cache.

    >>> async for neigh in nl.neighbours():
    ...     print(neigh.dst, neigh.lladdr, neigh.state_names)
    """

    family: int
    ifindex: int
    dst: str | None
    lladdr: str | None = None
    state: int = 0  #: NUD_* bits
    flags: int = 0  #: NTF_* bits
    type: int = 0
    dev: str | None = None
    protocol: int | None = None  #: NDA_PROTOCOL: who installed the entry
    #: NDA_CACHEINFO (struct nda_cacheinfo) as (confirmed, used, updated,
    #: refcnt): clock ticks (USER_HZ) since each happened, and references;
    #: with ``probes`` (NDA_PROBES), what ``ip -s neigh`` adds. Clocks and
    #: counters the kernel moves without a notification: not part of
    #: equality (the entry dumped a second later is the same entry).
    cacheinfo: tuple[int, int, int, int] | None = attrs.field(default=None, eq=False, repr=False)
    probes: int | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def key(self) -> tuple[Any, ...]:
        # A proxy entry (pneigh_lookup) lives in a table of its own beside
        # the neighbour of the same address.
        return (self.family, self.ifindex, self.dst, self.flags & NTF_PROXY)

    @property
    def state_names(self) -> list[str]:
        return [name for bit, name in NEIGH_STATE_NAMES if self.state & bit] if self.state else ["NONE"]

    def to_json(self, stats: bool = False) -> dict[str, Any]:
        """The object ``ip -j neigh show`` prints for this entry (``ip -j -s
        neigh show`` with ``stats``: refcnt, used, confirmed, updated in
        seconds, probes, before the state)."""
        out: dict[str, Any] = {}
        if self.dst is not None:
            out["dst"] = self.dst
        if self.ifindex:
            out["dev"] = self.dev or f"if{self.ifindex}"
        if self.lladdr is not None:
            out["lladdr"] = self.lladdr
        if self.flags & NTF_ROUTER:
            out["router"] = None
        if self.flags & NTF_PROXY:
            out["proxy"] = None
        if self.flags & NTF_EXT_LEARNED:
            out["extern_learn"] = None
        if self.flags & NTF_OFFLOADED:
            out["offload"] = None
        if stats:
            if self.cacheinfo is not None:
                # print_cacheinfo(): clock_t over sysconf(_SC_CLK_TCK), 100 on Linux
                confirmed, used, updated, refcnt = self.cacheinfo
                if refcnt:
                    out["refcnt"] = refcnt
                out["used"] = used // USER_HZ
                out["confirmed"] = confirmed // USER_HZ
                out["updated"] = updated // USER_HZ
            if self.probes is not None:
                out["probes"] = self.probes
        if self.state:
            out["state"] = self.state_names
        if self.protocol is not None:
            out["protocol"] = protocol_name(self.protocol)
        return out


@attrs.frozen
class Rule:
    """A policy routing rule (RTM_NEWRULE).

    >>> async for rule in nl.rules():
    ...     print(rule.priority, rule.src, rule.table)
    """

    family: int
    priority: int
    action: int = FR_ACT_TO_TBL
    table: int = 0
    src: str | None = None
    src_len: int = 0
    dst: str | None = None
    dst_len: int = 0
    tos: int = 0
    flags: int = 0  #: FIB_RULE_* (FIB_RULE_INVERT = "not")
    fwmark: int | None = None
    fwmask: int | None = None
    iifname: str | None = None
    oifname: str | None = None
    goto: int | None = None
    protocol: int | None = None
    suppress_prefixlen: int | None = None
    suppress_ifgroup: int | None = None  #: FRA_SUPPRESS_IFGROUP
    l3mdev: bool = False  #: FRA_L3MDEV: look up the table of the packet's L3 master device
    uid_range: tuple[int, int] | None = None  #: FRA_UID_RANGE (start, end)
    ip_proto: int | None = None  #: FRA_IP_PROTO
    sport: tuple[int, int] | None = None  #: FRA_SPORT_RANGE (start, end)
    dport: tuple[int, int] | None = None  #: FRA_DPORT_RANGE (start, end)
    flow: int | None = None  #: FRA_FLOW: realms, ``from << 16 | to``
    tun_id: int | None = None  #: FRA_TUN_ID
    nat_gateway: str | None = None  #: RTA_GATEWAY of an old "nat" rule (map-to)

    @property
    def key(self) -> tuple[Any, ...]:
        # Every selector and action the kernel compares when it looks a rule
        # up (rule_find / fib_nl_delrule): rules equal in the older
        # selectors but not in ip_proto, ports, uid range, tun_id, l3mdev,
        # suppress_* or realms are distinct rules.
        return (
            self.family, self.priority, self.action, self.table, self.src, self.src_len, self.dst, self.dst_len,
            self.tos, self.flags & FIB_RULE_INVERT, self.fwmark, self.fwmask, self.iifname, self.oifname, self.goto,
            self.suppress_prefixlen, self.suppress_ifgroup, self.l3mdev, self.uid_range, self.ip_proto, self.sport,
            self.dport, self.tun_id, self.flow,
        )  # fmt: skip

    def to_json(self, details: bool = False) -> dict[str, Any]:
        """The object ``ip -j rule show`` prints for this rule, keys in
        print_rule()'s order (``details``: ``ip -d``, which also prints
        the kernel protocol)."""
        host = HOST_PREFIXLEN.get(self.family)
        out: dict[str, Any] = {"priority": self.priority}
        flags = self.flags
        if flags & FIB_RULE_INVERT:
            out["not"] = None
        if self.src is not None:
            out["src"] = self.src
            if self.src_len != host:
                out["srclen"] = self.src_len
        elif self.src_len:
            out["src"] = "0"
            out["srclen"] = self.src_len
        else:
            out["src"] = "all"
        if self.dst is not None:
            out["dst"] = self.dst
            if self.dst_len != host:
                out["dstlen"] = self.dst_len
        elif self.dst_len:
            out["dst"] = "0"
            out["dstlen"] = self.dst_len
        if self.tos:
            out["tos"] = f"0x{self.tos:02x}"
        if self.fwmark is not None or self.fwmask is not None:
            # print_0xhex(): C's "%#llx", which writes 0 as "0"
            out["fwmark"] = f"{self.fwmark:#x}" if self.fwmark else "0"
            if self.fwmask is not None and self.fwmask != 0xFFFFFFFF:
                out["fwmask"] = f"{self.fwmask:#x}" if self.fwmask else "0"
        if self.iifname is not None:
            out["iif"] = self.iifname
            if flags & FIB_RULE_IIF_DETACHED:
                out["iif_detached"] = None
        if self.oifname is not None:
            out["oif"] = self.oifname
            if flags & FIB_RULE_OIF_DETACHED:
                out["oif_detached"] = None
        if self.l3mdev:
            out["l3mdev"] = None
        if self.uid_range is not None:
            out["uid_start"], out["uid_end"] = self.uid_range
        if self.ip_proto is not None:
            out["ipproto"] = ip_protocol_name(self.ip_proto)
        for name, ports in (("sport", self.sport), ("dport", self.dport)):
            if ports is not None:
                if ports[0] == ports[1]:
                    out[name] = ports[0]
                else:
                    out[f"{name}_start"], out[f"{name}_end"] = ports
        if self.tun_id is not None:
            out["tun_id"] = self.tun_id
        if self.table:
            out["table"] = table_name(self.table)
            if self.suppress_prefixlen is not None and self.suppress_prefixlen != 0xFFFFFFFF:
                out["suppress_prefixlen"] = self.suppress_prefixlen
            if self.suppress_ifgroup is not None and self.suppress_ifgroup != 0xFFFFFFFF:
                out["suppress_ifgroup"] = group_name(self.suppress_ifgroup)
        if self.flow is not None:
            if self.flow >> 16:
                out["flow_from"] = realm_name(self.flow >> 16)
            out["flow_to"] = realm_name(self.flow & 0xFFFF)
        action = self.action
        if action == RTN_NAT:
            if self.nat_gateway is not None:
                out["nat_gateway"] = self.nat_gateway
            else:
                out["masquerade"] = None
        elif action == FR_ACT_GOTO:
            out["goto"] = self.goto if self.goto is not None else "none"
            if flags & FIB_RULE_UNRESOLVED:
                out["unresolved"] = None
        elif action == FR_ACT_NOP:
            out["nop"] = None
        elif action != FR_ACT_TO_TBL:
            out["action"] = route_type_name(action)  # FR_ACT_BLACKHOLE.. share RTN_* numbers
        if self.protocol is not None and ((self.protocol and self.protocol != RTPROT_KERNEL) or details):
            out["protocol"] = protocol_name(self.protocol)
        return out


Kind = Literal["link", "address", "route", "neighbour", "rule", "nexthop"]


@attrs.frozen
class Event:
    """One change seen by :meth:`RtnlClient.monitor`: ``action`` is ``"new"``
    (added or changed) or ``"del"``; ``kind`` names the object type."""

    action: Literal["new", "del"]
    kind: Kind
    obj: Any

    def to_json(self) -> dict[str, Any]:
        """``{"action": ..., "kind": ..., "object": obj.to_json()}``"""
        return {"action": self.action, "kind": self.kind, "object": self.obj.to_json()}


# Re-exported for callers formatting values the way ``ip`` does.
__all__ += ["protocol_name", "scope_name", "table_name", "route_type_name"]
