"""rtnetlink numbers and the names iproute2 prints for them.

Pure: imports neither asyncio nor socket.

Numbers come from the kernel UAPI headers ``linux/if_link.h`` (IFLA_*),
``linux/if_addr.h`` (IFA_*), ``linux/rtnetlink.h`` (RTA_*, RTN_*, RTPROT_*,
RT_SCOPE_*, RT_TABLE_*), ``linux/neighbour.h`` (NDA_*, NUD_*, NTF_*),
``linux/fib_rules.h`` (FRA_*, FR_ACT_*), ``linux/if.h`` (IFF_*, IF_OPER_*)
and ``linux/if_arp.h`` (ARPHRD_*). The name tables reproduce what iproute2
shows in ``ip -j`` output (its ``rt_names.c`` defaults and the tables Debian
ships in /etc/iproute2), so ``to_json()`` compares key by key with ``ip -j``.
"""

from __future__ import annotations

AF_UNSPEC = 0
AF_INET = 2
AF_BRIDGE = 7
AF_INET6 = 10
AF_PACKET = 17

FAMILY_NAMES = {AF_INET: "inet", AF_INET6: "inet6", AF_BRIDGE: "bridge", AF_PACKET: "link", AF_UNSPEC: "unspec"}
HOST_PREFIXLEN = {AF_INET: 32, AF_INET6: 128}

# --- links: struct ifinfomsg + IFLA_* -------------------------------------
IFLA_ADDRESS = 1
IFLA_BROADCAST = 2
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_QDISC = 6
IFLA_STATS = 7
IFLA_MASTER = 10
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKMODE = 17
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_IFALIAS = 20
IFLA_GROUP = 27
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_PROMISCUITY = 30
IFLA_CARRIER = 33
IFLA_LINK_NETNSID = 37
IFLA_MIN_MTU = 50
IFLA_MAX_MTU = 51
IFLA_ALT_IFNAME = 53

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4

VETH_INFO_PEER = 1
IFLA_VLAN_ID = 1
IFLA_VLAN_PROTOCOL = 5
IFLA_MACVLAN_MODE = 1
IFLA_VXLAN_ID = 1
IFLA_VXLAN_GROUP = 2
IFLA_VXLAN_LINK = 3
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_PORT = 15  # big endian
IFLA_VXLAN_GROUP6 = 16
IFLA_VXLAN_LOCAL6 = 17

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

# RTEXT_FILTER_* for IFLA_EXT_MASK (include/uapi/linux/rtnetlink.h)
RTEXT_FILTER_VF = 1 << 0
RTEXT_FILTER_SKIP_STATS = 1 << 3

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_DEBUG = 0x4
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_NOTRAILERS = 0x20
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFF_MASTER = 0x400
IFF_SLAVE = 0x800
IFF_MULTICAST = 0x1000
IFF_PORTSEL = 0x2000
IFF_AUTOMEDIA = 0x4000
IFF_DYNAMIC = 0x8000
IFF_LOWER_UP = 0x10000
IFF_DORMANT = 0x20000
IFF_ECHO = 0x40000

#: The order iproute2's print_link_flags() prints interface flags in.
LINK_FLAG_ORDER = (
    (IFF_LOOPBACK, "LOOPBACK"),
    (IFF_BROADCAST, "BROADCAST"),
    (IFF_POINTOPOINT, "POINTOPOINT"),
    (IFF_MULTICAST, "MULTICAST"),
    (IFF_NOARP, "NOARP"),
    (IFF_ALLMULTI, "ALLMULTI"),
    (IFF_PROMISC, "PROMISC"),
    (IFF_NOTRAILERS, "NOTRAILERS"),
    (IFF_DEBUG, "DEBUG"),
    (IFF_DYNAMIC, "DYNAMIC"),
    (IFF_AUTOMEDIA, "AUTOMEDIA"),
    (IFF_PORTSEL, "PORTSEL"),
    (IFF_MASTER, "MASTER"),
    (IFF_SLAVE, "SLAVE"),
    (IFF_UP, "UP"),
    (IFF_LOWER_UP, "LOWER_UP"),
    (IFF_DORMANT, "DORMANT"),
    (IFF_ECHO, "ECHO"),
)

OPERSTATE_NAMES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
LINKMODE_NAMES = ("DEFAULT", "DORMANT")

#: ARPHRD_* -> iproute2's ll_type_n2a() names (the common ones).
LINK_TYPE_NAMES = {
    0: "netrom",
    1: "ether",
    2: "eether",
    3: "ax25",
    6: "ieee802",
    24: "ieee1394",
    32: "infiniband",
    256: "slip",
    512: "ppp",
    768: "ipip",
    769: "tunnel6",
    772: "loopback",
    776: "sit",
    778: "gre",
    779: "pimreg",
    783: "irda",
    801: "ieee802.11",
    803: "ieee802.11/radiotap",
    823: "gre6",
    824: "netlink",
    825: "6lowpan",
    65534: "none",
    65535: "void",
}

# --- addresses: struct ifaddrmsg + IFA_* ------------------------------------
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_ANYCAST = 5
IFA_CACHEINFO = 6
IFA_FLAGS = 8
IFA_RT_PRIORITY = 9
IFA_PROTO = 11

IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
IFA_F_STABLE_PRIVACY = 0x800

#: iproute2's ifa_flag_names, in print order (print_ifa_flags()):
#: IFA_F_PERMANENT is shown inverted, as "dynamic", at its place in the list.
ADDRESS_FLAG_NAMES = (
    (IFA_F_SECONDARY, "secondary", "temporary"),  # one bit: "temporary" for IPv6
    (IFA_F_NODAD, "nodad", "nodad"),
    (IFA_F_OPTIMISTIC, "optimistic", "optimistic"),
    (IFA_F_DADFAILED, "dadfailed", "dadfailed"),
    (IFA_F_HOMEADDRESS, "home", "home"),
    (IFA_F_DEPRECATED, "deprecated", "deprecated"),
    (IFA_F_TENTATIVE, "tentative", "tentative"),
    (IFA_F_PERMANENT, "dynamic", "dynamic"),
    (IFA_F_MANAGETEMPADDR, "mngtmpaddr", "mngtmpaddr"),
    (IFA_F_NOPREFIXROUTE, "noprefixroute", "noprefixroute"),
    (IFA_F_MCAUTOJOIN, "autojoin", "autojoin"),
    (IFA_F_STABLE_PRIVACY, "stable-privacy", "stable-privacy"),
)

# --- routes: struct rtmsg + RTA_* ---------------------------------------------
RTA_DST = 1
RTA_SRC = 2
RTA_IIF = 3
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_MULTIPATH = 9
RTA_FLOW = 11
RTA_CACHEINFO = 12
RTA_TABLE = 15
RTA_MARK = 16
RTA_VIA = 18
RTA_NEWDST = 19
RTA_PREF = 20
RTA_ENCAP_TYPE = 21
RTA_ENCAP = 22
RTA_EXPIRES = 23
RTA_UID = 25
RTA_TTL_PROPAGATE = 26
RTA_NH_ID = 30

#: RTA_METRICS members (RTAX_*) by number, as print_rta_metrics() names
#: them in JSON; RTAX_LOCK (1) is the bitmask of locked metrics, which
#: ``ip -j`` does not print.
RTAX_LOCK = 1
RTAX_RTT = 4
RTAX_RTTVAR = 5
RTAX_FEATURES = 12
RTAX_RTO_MIN = 13
RTAX_CC_ALGO = 16
RTAX_HOPLIMIT = 10
RTAX_FEATURE_ECN = 1
METRIC_NAMES = {
    2: "mtu", 3: "window", 4: "rtt", 5: "rttvar", 6: "ssthresh", 7: "cwnd", 8: "advmss", 9: "reordering",
    10: "hoplimit", 11: "initcwnd", 12: "features", 13: "rto_min", 14: "initrwnd", 15: "quickack",
    16: "congestion", 17: "fastopen_no_cookie",
}  # fmt: skip

RTN_UNSPEC = 0
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTN_ANYCAST = 4
RTN_MULTICAST = 5
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
RTN_THROW = 9
RTN_NAT = 10
RTN_XRESOLVE = 11
ROUTE_TYPE_NAMES = (
    "none", "unicast", "local", "broadcast", "anycast", "multicast",
    "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve",
)  # fmt: skip

RTPROT_UNSPEC = 0
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4
#: rtnl_rtprot_n2a(): iproute2's built-in names plus Debian's /etc/iproute2/rt_protos.
PROTOCOL_NAMES = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
    11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted",
    18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
}  # fmt: skip

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_SITE = 200
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
SCOPE_NAMES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}

RT_TABLE_UNSPEC = 0
RT_TABLE_DEFAULT = 253
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
TABLE_NAMES = {RT_TABLE_DEFAULT: "default", RT_TABLE_MAIN: "main", RT_TABLE_LOCAL: "local"}

RTNH_F_DEAD = 1
RTNH_F_PERVASIVE = 2
RTNH_F_ONLINK = 4
RTNH_F_OFFLOAD = 8
RTNH_F_LINKDOWN = 16
RTNH_F_UNRESOLVED = 32
RTNH_F_TRAP = 64
RTM_F_NOTIFY = 0x100
RTM_F_CLONED = 0x200
RTM_F_LOOKUP_TABLE = 0x1000
RTM_F_OFFLOAD = 0x2000
RTM_F_TRAP = 0x4000
RTM_F_OFFLOAD_FAILED = 0x20000000
#: print_rt_flags() order and names.
ROUTE_FLAG_NAMES = (
    (RTNH_F_DEAD, "dead"),
    (RTNH_F_ONLINK, "onlink"),
    (RTNH_F_PERVASIVE, "pervasive"),
    (RTNH_F_OFFLOAD, "offload"),
    (RTNH_F_TRAP, "trap"),
    (RTM_F_NOTIFY, "notify"),
    (RTNH_F_LINKDOWN, "linkdown"),
    (RTNH_F_UNRESOLVED, "unresolved"),
    (RTM_F_OFFLOAD, "rt_offload"),
    (RTM_F_TRAP, "rt_trap"),
    (RTM_F_OFFLOAD_FAILED, "rt_offload_failed"),
)
#: print_cache_flags(): RTCF_* bits of a cached IPv4 route, in its order.
CACHE_FLAG_NAMES = (
    (0x80000000, "local"), (0x40000000, "reject"), (0x20000000, "mc"), (0x10000000, "brd"),
    (0x08000000, "dst-nat"), (0x00800000, "src-nat"), (0x00400000, "masq"), (0x00020000, "dst-direct"),
    (0x04000000, "src-direct"), (0x00040000, "redirected"), (0x01000000, "redirect"), (0x00200000, "fastroute"),
    (0x00010000, "notify"), (0x00080000, "proxy"),
)  # fmt: skip
#: rtnl_rtrealm_n2a(): /etc/iproute2/rt_realms as Debian ships it.
REALM_NAMES = {0: "cosmos"}
ROUTE_PREF_NAMES = {0: "medium", 1: "high", 3: "low"}  # ICMPV6_ROUTER_PREF_*

# --- neighbours: struct ndmsg + NDA_* ------------------------------------------
NDA_DST = 1
NDA_LLADDR = 2
NDA_CACHEINFO = 3
NDA_PROBES = 4
NDA_IFINDEX = 8
NDA_PROTOCOL = 12

NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_NONE = 0x00
NEIGH_STATE_NAMES = (
    (NUD_INCOMPLETE, "INCOMPLETE"),
    (NUD_REACHABLE, "REACHABLE"),
    (NUD_STALE, "STALE"),
    (NUD_DELAY, "DELAY"),
    (NUD_PROBE, "PROBE"),
    (NUD_FAILED, "FAILED"),
    (NUD_NOARP, "NOARP"),
    (NUD_PERMANENT, "PERMANENT"),
)
NEIGH_STATES_BY_NAME = {name.lower(): bit for bit, name in NEIGH_STATE_NAMES} | {"none": NUD_NONE}
NTF_USE = 0x01
NTF_SELF = 0x02
NTF_MASTER = 0x04
NTF_PROXY = 0x08
NTF_EXT_LEARNED = 0x10
NTF_OFFLOADED = 0x20
NTF_ROUTER = 0x80

# --- rules: struct fib_rule_hdr + FRA_* ---------------------------------------
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_GOTO = 4
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_FLOW = 11
FRA_SUPPRESS_IFGROUP = 13
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_L3MDEV = 19
FRA_UID_RANGE = 20
FRA_PROTOCOL = 21
FRA_IP_PROTO = 22
FRA_SPORT_RANGE = 23
FRA_DPORT_RANGE = 24
FRA_TUN_ID = 12
FIB_RULE_UNRESOLVED = 0x4
FIB_RULE_IIF_DETACHED = 0x8
FIB_RULE_OIF_DETACHED = 0x10

FR_ACT_UNSPEC = 0
FR_ACT_TO_TBL = 1
FR_ACT_GOTO = 2
FR_ACT_NOP = 3
FR_ACT_BLACKHOLE = 6
FR_ACT_UNREACHABLE = 7
FR_ACT_PROHIBIT = 8
RULE_ACTION_NAMES = {FR_ACT_GOTO: "goto", FR_ACT_NOP: "nop", FR_ACT_BLACKHOLE: "blackhole",
                     FR_ACT_UNREACHABLE: "unreachable", FR_ACT_PROHIBIT: "prohibit"}  # fmt: skip
FIB_RULE_INVERT = 0x2
FIB_RULE_IIF_DETACHED = 0x8
FIB_RULE_OIF_DETACHED = 0x10


def table_name(table: int) -> str:
    """rtnl_rttable_n2a(): "main", "local", "default" or the number as text."""
    return TABLE_NAMES.get(table) or str(table)


def protocol_name(protocol: int) -> str:
    return PROTOCOL_NAMES.get(protocol) or str(protocol)


def scope_name(scope: int) -> str:
    return SCOPE_NAMES.get(scope) or str(scope)


#: rtnl_group_n2a(): /etc/iproute2/group as Debian ships it.
GROUP_NAMES = {0: "default"}


def group_name(group: int) -> str:
    return GROUP_NAMES.get(group) or str(group)


#: inet_proto_n2a()'s built-in names; others come from /etc/protocols
#: (getprotobynumber), read once, and "ipproto-N" when it has none.
_IP_PROTOCOL_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp", 1: "icmp", 58: "ipv6-icmp"}
_etc_protocols: dict[int, str] | None = None


def ip_protocol_name(number: int) -> str:
    global _etc_protocols
    name = _IP_PROTOCOL_NAMES.get(number)
    if name is not None:
        return name
    if _etc_protocols is None:
        _etc_protocols = {}
        try:
            with open("/etc/protocols", encoding="utf-8", errors="replace") as file:
                for line in file:
                    fields = line.split("#", 1)[0].split()
                    if len(fields) >= 2 and fields[1].isdigit():
                        _etc_protocols.setdefault(int(fields[1]), fields[0])
        except OSError:
            pass
    return _etc_protocols.get(number) or f"ipproto-{number}"


def realm_name(realm: int) -> str:
    return REALM_NAMES.get(realm) or str(realm)


def route_type_name(route_type: int) -> str:
    return ROUTE_TYPE_NAMES[route_type] if route_type < len(ROUTE_TYPE_NAMES) else str(route_type)
