"""Interface counters from one ``RTM_GETSTATS`` dump (``IFLA_STATS_LINK_64``).

The kernel never notifies counter changes, so whoever shows live counters
(the netstate service's ``/metrics``) asks for them. ``RTM_GETSTATS`` with
a filter mask of only ``IFLA_STATS_LINK_64`` (``rtnl_stats_dump`` in
net/core/rtnetlink.c) answers per interface with a ``struct if_stats_msg``
and one ``struct rtnl_link_stats64``: about 230 bytes a link, against the
kilobyte or more of a full ``RTM_GETLINK`` dump with every attribute.

The request and the decoder are pure; :func:`link_stats` runs the dump on
an open NETLINK_ROUTE ring.

>>> msg = stats_dump_request()
>>> bytes(msg.payload)[:1], len(msg.payload)
(b'\\x00', 12)
"""

from __future__ import annotations

import struct
from typing import Any

from ...attributes import parse_attributes
from ...constants import NLM_F_DUMP, NLM_F_REQUEST
from ...errors import DecodeError
from ...message import Message
from .link_values import STATS64_FIELDS, LinkStats, stats64_at

__all__ = [
    "RTM_NEWSTATS",
    "RTM_GETSTATS",
    "IFLA_STATS_LINK_64",
    "LinkStats64",
    "stats_dump_request",
    "decode_stats",
    "link_stats",
    "walk_stats",
]

# <linux/rtnetlink.h>: RTM_NEWSTATS = 92, RTM_GETSTATS = 94
RTM_NEWSTATS, RTM_GETSTATS = 92, 94
# <linux/if_link.h> enum { IFLA_STATS_UNSPEC, IFLA_STATS_LINK_64, ... };
# the filter mask bit of attribute A is 1 << (A - 1) (IFLA_STATS_FILTER_BIT).
IFLA_STATS_LINK_64 = 1
_FILTER_LINK_64 = 1 << (IFLA_STATS_LINK_64 - 1)
#: struct if_stats_msg { u8 family; u8 pad1; u16 pad2; u32 ifindex; u32 filter_mask; }
IF_STATS_MSG = struct.Struct("=BBHII")

#: struct rtnl_link_stats64's fields, in the kernel's order; the values are
#: rtnl's own LinkStats (the class ``-s`` link dumps decode IFLA_STATS64 to).
FIELDS = STATS64_FIELDS
LinkStats64 = LinkStats
_ALL = struct.Struct(f"={len(FIELDS)}Q")


def stats_dump_request(ifindex: int = 0) -> Message:
    """``RTM_GETSTATS`` dump asking only for ``IFLA_STATS_LINK_64``."""
    payload = IF_STATS_MSG.pack(0, 0, 0, ifindex, _FILTER_LINK_64)
    return Message(RTM_GETSTATS, NLM_F_REQUEST | NLM_F_DUMP, payload=payload)


def decode_stats(buffer: Any, start: int, end: int) -> tuple[int, LinkStats64 | None]:
    """One RTM_NEWSTATS payload -> ``(ifindex, stats)``; stats is None when
    the message carries no IFLA_STATS_LINK_64 (the kernel omits it only if
    the mask did not ask for it)."""
    if end - start < IF_STATS_MSG.size:
        raise DecodeError(f"RTM_NEWSTATS of {end - start} bytes is shorter than struct if_stats_msg")
    _family, _pad1, _pad2, ifindex, _mask = IF_STATS_MSG.unpack_from(buffer, start)
    span = parse_attributes(buffer, start + IF_STATS_MSG.size, end).get(IFLA_STATS_LINK_64)
    if span is None:
        return ifindex, None
    first, last = span
    stats = stats64_at(buffer, first, last - first)
    if stats is None:
        raise DecodeError(f"IFLA_STATS_LINK_64 of {last - first} bytes: not a struct rtnl_link_stats64")
    return ifindex, stats


#: nlmsghdr length and type, if_stats_msg ifindex, then the first nlattr's
#: length and type: where the kernel puts IFLA_STATS_LINK_64 first, with no
#: pad attribute before it (64-bit arches with efficient unaligned access,
#: see nla_need_padding_for_64bit), its struct starts right after.
_FAST_HEAD = struct.Struct("=IH14xI4xHH")
_FAST_DATA = _FAST_HEAD.size
_FAST_NLA_LEN = 4 + _ALL.size
_LENGTH_AND_TYPE = struct.Struct("=IH")


def walk_stats(buffer: Any, end: int, out: dict[int, LinkStats64]) -> None:
    """Decode the RTM_NEWSTATS messages in ``buffer[:end]`` (whole messages
    whose headers the ring checked, as ``Ring.dump_chunks`` yields them)
    into ``out``; messages of another layout take :func:`decode_stats`."""
    offset = 0
    unpack_head, unpack_all = _FAST_HEAD.unpack_from, _ALL.unpack_from
    while offset < end:
        if end - offset < _FAST_DATA:  # a short message (NLMSG_DONE, an error): not ours
            length, msg_type = _LENGTH_AND_TYPE.unpack_from(buffer, offset)
            offset = (offset + length + 3) & ~3
            continue
        length, msg_type, ifindex, nla_len, nla_type = unpack_head(buffer, offset)
        if msg_type == RTM_NEWSTATS:
            if nla_type == IFLA_STATS_LINK_64 and nla_len == _FAST_NLA_LEN and length >= _FAST_DATA + _ALL.size:
                out[ifindex] = LinkStats64(*unpack_all(buffer, offset + _FAST_DATA))
            else:
                index, stats = decode_stats(buffer, offset + 16, offset + length)
                if stats is not None:
                    out[index] = stats
        offset = (offset + length + 3) & ~3



async def link_stats(ring: Any) -> dict[int, LinkStats64]:
    """ifindex -> counters, from one RTM_GETSTATS dump on ``ring`` (an open
    NETLINK_ROUTE ring of the namespace to read), decoded a datagram at a
    time straight from the frames (``Ring.dump_chunks``)."""
    out: dict[int, LinkStats64] = {}
    async for frame, body in ring.dump_chunks(stats_dump_request(), on_interrupt="ignore"):
        if body.__class__ is int:
            walk_stats(frame.buffer, body, out)
        else:  # messages the ring routed one by one
            for msg in body:
                if msg[0] == RTM_NEWSTATS:
                    ifindex, stats = decode_stats(msg[6].buffer, msg[4], msg[5])
                    if stats is not None:
                        out[ifindex] = stats
    return out
