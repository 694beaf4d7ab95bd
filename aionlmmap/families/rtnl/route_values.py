"""Values of the route attributes most routes lack: RTA_METRICS,
RTA_CACHEINFO, RTA_VIA, as ``ip -j route`` shows them.

Pure: imports neither asyncio nor socket.

Shared by the generic route walk (``rtnl_codec.decode_route``) and the
learned layouts (``rtnl_route_layout``), which hand over the attribute's
raw bytes: a table whose routes all carry ``mtu 1400`` repeats one
RTA_METRICS blob, so :func:`metrics` decodes each distinct blob once.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from ...errors import DecodeError
from ...address_text import ipv4_text, ipv6_text
from .constants import (
    AF_INET,
    AF_INET6,
    FAMILY_NAMES,
    METRIC_NAMES,
    RTAX_CC_ALGO,
    RTAX_FEATURE_ECN,
    RTAX_FEATURES,
    RTAX_HOPLIMIT,
    RTAX_LOCK,
    RTAX_RTT,
    RTAX_RTTVAR,
)

__all__ = ["metrics", "expires_seconds", "via", "encap", "CACHEINFO", "USER_HZ"]

#: struct rta_cacheinfo {u32 clntref, lastuse; s32 expires; u32 error, used, id, ts, tsage}
CACHEINFO = struct.Struct("=IIiIIIII")
#: The kernel reports rta_expires in clock ticks (jiffies_to_clock_t);
#: iproute2's get_user_hz() divides by sysconf(_SC_CLK_TCK), or $HZ.
USER_HZ = int(os.environ.get("HZ") or 0) or os.sysconf("SC_CLK_TCK")

_NLATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_FAMILY = struct.Struct("=H")  # __kernel_sa_family_t, host order
_METRICS_CACHE: dict[bytes, tuple[tuple[str, Any], ...]] = {}
_METRICS_CACHE_MAX = 1024


def expires_seconds(ticks: int) -> int:
    """``rta_expires / hz`` as C divides (toward zero)."""
    return ticks // USER_HZ if ticks >= 0 else -(-ticks // USER_HZ)


def metrics(raw: bytes) -> tuple[tuple[str, Any], ...]:
    """The members of an RTA_METRICS attribute (its payload ``raw``) as
    print_rta_metrics() prints them in JSON: by RTAX number, rtt in ms
    (the kernel keeps it << 3), rttvar in ms (<< 2), hoplimit -1 left out,
    features as ``("ecn", None)`` plus ``("features", "0x..")`` for other
    bits, the congestion control algorithm as ``("congestion", name)``.
    RTAX_LOCK is not printed by ``ip -j`` (only its text output says
    "lock"), but a locked metric without a value is shown as 0."""
    known = _METRICS_CACHE.get(raw)
    if known is not None:
        return known
    members: dict[int, bytes] = {}
    offset = 0
    while len(raw) - offset >= 4:
        length, attr_type = _NLATTR.unpack_from(raw, offset)
        if length < 4 or offset + length > len(raw):
            break  # parse_rtattr() stops at a bad length too
        members[attr_type & 0x3FFF] = raw[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    lock_raw = members.get(RTAX_LOCK)
    lock = _U32.unpack_from(lock_raw)[0] if lock_raw is not None and len(lock_raw) >= 4 else 0
    out: list[tuple[str, Any]] = []
    for number in sorted(number for number in set(members) | {bit for bit in range(2, 32) if lock >> bit & 1} if number >= 2):
        name = METRIC_NAMES.get(number)
        value_raw = members.get(number)
        if name is None or (value_raw is None and number == RTAX_CC_ALGO):
            continue
        if number == RTAX_CC_ALGO:
            out.append((name, value_raw.split(b"\0", 1)[0].decode("utf-8", "replace")))  # type: ignore[union-attr]
            continue
        value = _U32.unpack_from(value_raw)[0] if value_raw is not None and len(value_raw) >= 4 else 0
        if number == RTAX_HOPLIMIT and value == 0xFFFFFFFF:
            continue
        if number == RTAX_FEATURES:
            if value & RTAX_FEATURE_ECN:
                out.append(("ecn", None))
            if value & ~RTAX_FEATURE_ECN:
                out.append(("features", f"{value:#x}"))
            continue
        if number == RTAX_RTT:
            value //= 8
        elif number == RTAX_RTTVAR:
            value //= 4
        out.append((name, value))
    result = tuple(out)
    if len(_METRICS_CACHE) < _METRICS_CACHE_MAX:
        _METRICS_CACHE[raw] = result
    return result


def via(raw: bytes) -> tuple[str, str]:
    """struct rtvia {u16 family; u8 addr[]} -> (family name, address)."""
    if len(raw) < _FAMILY.size:
        raise DecodeError(f"RTA_VIA of {len(raw)} bytes is shorter than struct rtvia's family (2 bytes)")
    (family,) = _FAMILY.unpack_from(raw)
    address = raw[2:]
    if family == AF_INET and len(address) == 4:
        host = ipv4_text(address)
    elif family == AF_INET6 and len(address) == 16:
        host = ipv6_text(bytes(address))
    else:
        host = address.hex(":")
    return FAMILY_NAMES.get(family, str(family)), host


#: LWTUNNEL_ENCAP_* names (format_encap_type())
ENCAP_TYPE_NAMES = {1: "mpls", 2: "ip", 3: "ila", 4: "ip6", 5: "seg6", 6: "bpf", 7: "seg6local", 8: "rpl", 9: "ioam6", 10: "xfrm"}
#: TUNNEL_KEY, TUNNEL_CSUM, TUNNEL_SEQ bits of LWTUNNEL_IP_FLAGS (be16), in print_encap_ip()'s order
_TUNNEL_FLAG_NAMES = ((0x04, "key"), (0x01, "csum"), (0x08, "seq"))


def encap(encap_type: int, raw: bytes) -> tuple[tuple[str, Any], ...]:
    """RTA_ENCAP (payload ``raw``) of type RTA_ENCAP_TYPE as lwt_print_encap()
    prints it: the type, then for ``ip``/``ip6`` tunnels (the types this
    kernel builds without extra modules) id, src, dst, ttl/hoplimit,
    tos/tc and the key/csum/seq flags. Other types show their name only."""
    name = ENCAP_TYPE_NAMES.get(encap_type, "unknown")
    out: list[tuple[str, Any]] = [("encap", name)]
    if encap_type not in (2, 4):
        return tuple(out)
    members: dict[int, bytes] = {}
    offset = 0
    while len(raw) - offset >= 4:
        length, attr_type = _NLATTR.unpack_from(raw, offset)
        if length < 4 or offset + length > len(raw):
            break
        members[attr_type & 0x3FFF] = raw[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    address = ipv4_text if encap_type == 2 else (lambda value: ipv6_text(bytes(value)))
    # LWTUNNEL_IP(6)_ID 1, DST 2, SRC 3, TTL/HOPLIMIT 4, TOS/TC 5, FLAGS 6
    if 1 in members and len(members[1]) == 8:
        out.append(("id", int.from_bytes(members[1], "big")))
    for number, key in ((3, "src"), (2, "dst")):
        if number in members:
            out.append((key, address(members[number])))
    for number, key in ((4, "ttl" if encap_type == 2 else "hoplimit"), (5, "tos" if encap_type == 2 else "tc")):
        if number in members and members[number]:
            out.append((key, members[number][0]))
    if 6 in members and len(members[6]) >= 2:
        flags = int.from_bytes(members[6][:2], "big")
        out += [(key, True) for bit, key in _TUNNEL_FLAG_NAMES if flags & bit]
    return tuple(out)
