"""Address texts exactly as ``ip`` prints them (``inet_ntop``).

Pure: imports neither asyncio nor socket. Part of the core because two
families print addresses this way (rtnl as ``ip`` does, sock_diag as ``ss``
does) and a family package imports no other; ``aionlmmap.families.rtnl.addresses``
names this same module.

iproute2 formats every address with ``inet_ntop``; glibc's IPv6 form is
RFC 5952 (the longest run of two or more zero groups, the first on a tie,
becomes ``::``; lower-case hex) except for two IPv4 forms: an IPv4-mapped
address (``::ffff:a.b.c.d``) and an IPv4-compatible one (the first 96 bits
zero, the next 16 not: ``::a.b.c.d``) end in a dotted quad
(``inet_ntop6``: ``best.base == 0 && (best.len == 6 || (best.len == 5 &&
words[5] == 0xffff))``). Python's ``ipaddress`` writes hex groups in both
cases, so ``ipv6_text`` handles them first.
"""

from __future__ import annotations

import struct

from ._extensions import speedups as _speedups

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DECIMAL", "DOTTED", "ipv4_text", "ipv6_text"]

#: Dotted-quad pieces: "n." and "n" for every octet. Four tuple lookups
#: joined by an f-string (one BUILD_STRING) cost a quarter of
#: "%d.%d.%d.%d" % (...), which parses its format every time.
DOTTED = tuple(f"{octet}." for octet in range(256))
DECIMAL = tuple(str(octet) for octet in range(256))

_ZERO_96 = bytes(12)
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_ZERO_16 = bytes(2)
#: raw address -> text; link-locals, gateways and prefixes repeat
_IPV6_TEXTS: dict[bytes, str] = {}
_IPV6_TEXTS_MAX = 4096
_EIGHT_GROUPS = struct.Struct("!8H")
#: Runs of zero groups, longest first, as they appear in ":g:g:...:g:"
_ZERO_RUNS = tuple(":" + "0:" * count for count in range(8, 1, -1))


def ipv4_text(buffer: Any, start: int = 0) -> str:
    """The dotted quad of the 4 bytes at ``buffer[start:]``."""
    return f"{DOTTED[buffer[start]]}{DOTTED[buffer[start + 1]]}{DOTTED[buffer[start + 2]]}{DECIMAL[buffer[start + 3]]}"


def ipv6_text(raw: bytes) -> str:
    """``inet_ntop(AF_INET6, raw)`` for a 16-byte ``raw``."""
    text = _IPV6_TEXTS.get(raw)
    if text is None:
        prefix = raw[:12]
        if prefix == _V4_MAPPED_PREFIX:
            text = "::ffff:" + ipv4_text(raw, 12)
        elif prefix == _ZERO_96 and raw[12:14] != _ZERO_16:
            text = "::" + ipv4_text(raw, 12)
        else:
            text = _hex_groups_text(raw)
        if len(_IPV6_TEXTS) < _IPV6_TEXTS_MAX:
            _IPV6_TEXTS[raw] = text
    return text


def _hex_groups_text(raw: bytes) -> str:
    """inet_ntop6()'s hex form: eight groups without leading zeros, the
    first longest run of two or more zero groups written as "::".

    Spelled as ":g:g:g:g:g:g:g:g:", a run of zero groups is a substring
    ":0:0:...:", so ``str.find`` of the longest run present finds the first
    one (ipaddress.IPv6Address(raw).compressed gives the same text at about
    ten times the cost: a 100,000-route IPv6 table has 100,000 distinct
    destinations, past _IPV6_TEXTS' reach)."""
    text = ":%x:%x:%x:%x:%x:%x:%x:%x:" % _EIGHT_GROUPS.unpack(raw)
    for run in _ZERO_RUNS:
        at = text.find(run)
        if at >= 0:
            text = text[:at] + "::" + text[at + len(run) :]
            break
    # The outer colons stay only where they are half of a "::".
    start = 0 if text.startswith("::") else 1
    return text[start:] if text.endswith("::") else text[start:-1]


# The compiled twin (aionlmmap/_speedups.pyx: glibc's inet_ntop itself)
# takes the name unless pure Python is selected (aionlmmap._extensions);
# the definition above stays the reference.
_pure_ipv6_text = ipv6_text
if _speedups is not None:
    ipv6_text = _speedups.ipv6_text  # type: ignore[misc, no-redef, assignment]  # noqa: F811
