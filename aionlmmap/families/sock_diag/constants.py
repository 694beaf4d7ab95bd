"""sock_diag numbers (include/uapi/linux/sock_diag.h, inet_diag.h,
unix_diag.h, net/tcp_states.h) and ss's names for them.

Pure: imports neither asyncio nor socket.
"""

from __future__ import annotations

SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
#: inet_diag's original request (struct inet_diag_req): a dump of TCP sockets
#: of every address family in one walk of the socket tables
#: (inet_diag_dump_compat sets sdiag_family to AF_UNSPEC); the replies are
#: inet_diag_msgs of this message type
TCPDIAG_GETSOCK = 18
#: errnos of a kernel that will not take TCPDIAG_GETSOCK: sock_diag_rcv_msg
#: answers EOPNOTSUPP when inet_diag registered no compat handler, and a
#: kernel that does not know the command says EINVAL. Then TCP is dumped
#: with one SOCK_DIAG_BY_FAMILY request per family, as before.
TCPDIAG_REFUSALS = frozenset({95, 22})  # EOPNOTSUPP, EINVAL

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_RAW = 255

# enum tcp_state (net/tcp_states.h); UDP and unix reuse them
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
TCP_NEW_SYN_RECV = 12
TCP_BOUND_INACTIVE = 13
ALL_STATES = (1 << 14) - 1

#: state number -> ss's name (ss's sstate_name; NEW_SYN_RECV shows as SYN-RECV)
STATE_NAMES = {
    0: "UNKNOWN",
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",
    13: "UNCONN",
}


def _mask(*states: int) -> int:
    bits = 0
    for state in states:
        bits |= 1 << state
    return bits


#: ss's `state` filter words -> bit masks of states (ss's sstate_namel and
#: its groups: connected, synchronized, bucket, big)
STATE_FILTERS = {
    "all": ALL_STATES,
    "established": _mask(TCP_ESTABLISHED),
    "syn-sent": _mask(TCP_SYN_SENT),
    "syn-recv": _mask(TCP_SYN_RECV, TCP_NEW_SYN_RECV),
    "fin-wait-1": _mask(TCP_FIN_WAIT1),
    "fin-wait-2": _mask(TCP_FIN_WAIT2),
    "time-wait": _mask(TCP_TIME_WAIT),
    "closed": _mask(TCP_CLOSE),
    "close-wait": _mask(TCP_CLOSE_WAIT),
    "last-ack": _mask(TCP_LAST_ACK),
    "listening": _mask(TCP_LISTEN),
    "closing": _mask(TCP_CLOSING),
    "connected": ALL_STATES & ~_mask(TCP_LISTEN, TCP_CLOSE),
    "synchronized": ALL_STATES & ~_mask(TCP_LISTEN, TCP_CLOSE, TCP_SYN_SENT),
    "bucket": _mask(TCP_SYN_RECV, TCP_NEW_SYN_RECV, TCP_TIME_WAIT),
    "big": ALL_STATES & ~_mask(TCP_SYN_RECV, TCP_NEW_SYN_RECV, TCP_TIME_WAIT),
}

# enum INET_DIAG_REQ_*
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_REQ_PROTOCOL = 3

# response attributes (enum INET_DIAG_*): requested through idiag_ext bit
# (attribute - 1) for the first eight
INET_DIAG_MEMINFO = 1
INET_DIAG_INFO = 2
INET_DIAG_VEGASINFO = 3
INET_DIAG_CONG = 4
INET_DIAG_TOS = 5
INET_DIAG_TCLASS = 6
INET_DIAG_SKMEMINFO = 7
INET_DIAG_SHUTDOWN = 8
INET_DIAG_DCTCPINFO = 9
INET_DIAG_PROTOCOL = 10
INET_DIAG_SKV6ONLY = 11
INET_DIAG_LOCALS = 12
INET_DIAG_PEERS = 13
INET_DIAG_PAD = 14
INET_DIAG_MARK = 15
INET_DIAG_BBRINFO = 16
INET_DIAG_CLASS_ID = 17
INET_DIAG_MD5SIG = 18
INET_DIAG_ULP_INFO = 19
INET_DIAG_SK_BPF_STORAGES = 20
INET_DIAG_CGROUP_ID = 21
INET_DIAG_SOCKOPT = 22

#: extension names for ``extensions=`` -> idiag_ext bits
EXTENSIONS = {
    "meminfo": 1 << (INET_DIAG_MEMINFO - 1),
    "tcp_info": 1 << (INET_DIAG_INFO - 1),
    "vegas": 1 << (INET_DIAG_VEGASINFO - 1),
    "cong": 1 << (INET_DIAG_CONG - 1),
    "tos": 1 << (INET_DIAG_TOS - 1),
    "tclass": 1 << (INET_DIAG_TCLASS - 1),
    "skmeminfo": 1 << (INET_DIAG_SKMEMINFO - 1),
    "shutdown": 1 << (INET_DIAG_SHUTDOWN - 1),
}

# inet_diag bytecode (enum INET_DIAG_BC_*)
INET_DIAG_BC_NOP = 0
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
INET_DIAG_BC_D_GE = 4
INET_DIAG_BC_D_LE = 5
INET_DIAG_BC_AUTO = 6
INET_DIAG_BC_S_COND = 7
INET_DIAG_BC_D_COND = 8
INET_DIAG_BC_DEV_COND = 9
INET_DIAG_BC_MARK_COND = 10
INET_DIAG_BC_S_EQ = 11
INET_DIAG_BC_D_EQ = 12
INET_DIAG_BC_CGROUP_COND = 13

# unix_diag
UDIAG_SHOW_NAME = 0x01
UDIAG_SHOW_VFS = 0x02
UDIAG_SHOW_PEER = 0x04
UDIAG_SHOW_ICONS = 0x08
UDIAG_SHOW_RQLEN = 0x10
UDIAG_SHOW_MEMINFO = 0x20
UDIAG_SHOW_UID = 0x40
UNIX_DIAG_NAME = 0
UNIX_DIAG_VFS = 1
UNIX_DIAG_PEER = 2
UNIX_DIAG_ICONS = 3
UNIX_DIAG_RQLEN = 4
UNIX_DIAG_MEMINFO = 5
UNIX_DIAG_SHUTDOWN = 6
UNIX_DIAG_UID = 7

SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_SEQPACKET = 5
#: unix socket type -> ss's Netid
UNIX_NETIDS = {SOCK_STREAM: "u_str", SOCK_DGRAM: "u_dgr", SOCK_SEQPACKET: "u_seq"}

#: enum sk_meminfo_vars names (ss -m's skmem: r, rb, t, tb, f, w, o, bl, d)
SK_MEMINFO_NAMES = ("rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc", "wmem_queued", "optmem", "backlog", "drops")
