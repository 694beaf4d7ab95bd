"""Fast path for decoding route dumps: learned message layouts.

Pure: imports neither asyncio nor socket.

The kernel builds every route of a dump with the same code
(``fib_dump_info`` / ``rt6_fill_node``), so routes of one kind share one
attribute layout: same attributes, same order, same sizes, hence the same
payload length. After the generic walk decoded one route, :func:`learn`
compiles its layout into one ``struct.Struct`` that unpacks the rtmsg, every
nlattr header and every wanted value in a single call, plus a builder with
the value positions baked in. :func:`decode` tries the layout cached for the
payload length and *checks every nlattr header* it unpacked against the
learned ones before trusting the values; on any mismatch the caller falls
back to the generic walk. A 100,000-route dump is then one unpack and one
object per route.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from .rtnl_constants import RTA_DST, RTA_GATEWAY, RTA_MULTIPATH, RTA_OIF, RTA_PREF, RTA_PREFSRC, RTA_PRIORITY, RTA_SRC, RTA_TABLE
from .rtnl_objects import Route

__all__ = ["decode", "learn", "is_known", "clear"]

_MAX_LAYOUTS = 64
_U32_ATTRIBUTES = {RTA_TABLE: "table", RTA_OIF: "oif", RTA_PRIORITY: "priority"}
_ADDRESS_ATTRIBUTES = {RTA_DST: "dst", RTA_GATEWAY: "gateway", RTA_PREFSRC: "prefsrc", RTA_SRC: "src"}
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class _Layout:
    __slots__ = ("unpack", "headers", "expected", "build")

    def __init__(self, unpack: Callable[..., tuple[Any, ...]], headers: Callable[[tuple[Any, ...]], Any], expected: Any, build: Callable[..., Route]) -> None:
        self.unpack = unpack
        self.headers = headers
        self.expected = expected
        self.build = build


#: payload length -> layout
_layouts: dict[int, _Layout | None] = {}


def clear() -> None:
    _layouts.clear()


def is_known(length: int) -> bool:
    """Whether a payload length was already learned (or ruled out)."""
    return length in _layouts


def _ipv6_text(raw: bytes) -> str:
    if raw[:12] == _V4_MAPPED_PREFIX:
        return "::ffff:%d.%d.%d.%d" % tuple(raw[12:])
    return ipaddress.IPv6Address(raw).compressed


def decode(buffer: Any, start: int, end: int, names: dict[int, str] | None) -> Route | None:
    """The route at ``buffer[start:end]`` if a learned layout fits it exactly, else None."""
    layout = _layouts.get(end - start)
    if layout is None:
        return None
    values = layout.unpack(buffer, start)
    if layout.headers(values) != layout.expected:
        return None
    return layout.build(values, names)


def learn(length: int, spans: list[tuple[int, int, int, int]]) -> None:
    """Compile the layout of a route payload of ``length`` bytes whose
    attributes were ``(raw nla_type, header offset, value offset, value length)``
    (offsets from the payload start). Layouts with attributes this fast
    path does not decode by position (RTA_MULTIPATH, ...) are skipped."""
    if length in _layouts or len(_layouts) >= _MAX_LAYOUTS:
        return
    fmt = ["=BBBBBBBBI"]
    index = 9  # values produced so far (the rtmsg gives 9)
    position = 12
    header_positions: list[int] = []
    expected: list[int] = []
    exprs = {"table": "values[4]", "oif": "None", "priority": "None", "dst": "None", "gateway": "None", "prefsrc": "None", "src": "None", "pref": "None"}
    for raw_type, header_offset, value_offset, value_length in spans:
        attr_type = raw_type & 0x3FFF
        if header_offset > position:
            fmt.append(f"{header_offset - position}x")
        fmt.append("HH")
        header_positions += [index, index + 1]
        expected += [value_length + 4, raw_type]
        index += 2
        if attr_type in _U32_ATTRIBUTES and value_length == 4:
            fmt.append("I")
            exprs[_U32_ATTRIBUTES[attr_type]] = f"values[{index}]"
            index += 1
        elif attr_type in _ADDRESS_ATTRIBUTES and value_length == 4:
            fmt.append("4B")
            exprs[_ADDRESS_ATTRIBUTES[attr_type]] = f"_ipv4_format % values[{index}:{index + 4}]"
            index += 4
        elif attr_type in _ADDRESS_ATTRIBUTES and value_length == 16:
            fmt.append("16s")
            exprs[_ADDRESS_ATTRIBUTES[attr_type]] = f"_ipv6_text(values[{index}])"
            index += 1
        elif attr_type == RTA_PREF and value_length == 1:
            fmt.append("B")
            exprs["pref"] = f"values[{index}]"
            index += 1
        elif attr_type in _U32_ATTRIBUTES or attr_type in _ADDRESS_ATTRIBUTES or attr_type == RTA_PREF:
            _layouts[length] = None  # odd size: leave it to the generic walk (which raises)
            return
        elif attr_type == RTA_MULTIPATH:  # nested rtnexthop list: needs the walk
            _layouts[length] = None
            return
        elif value_length:
            fmt.append(f"{value_length}x")
        position = value_offset + value_length
    dev = "(names.get(oif) if names else None) if oif is not None else None"
    # Route(family, table, dst, dst_len, type, protocol, scope, flags, tos,
    #       priority, gateway, oif, dev, prefsrc, src, src_len, pref, nexthops)
    source = (
        "def build(values, names):\n"
        f"    oif = {exprs['oif']}\n"
        f"    return _Route(values[0], {exprs['table']}, {exprs['dst']}, values[1], values[7], values[5], values[6], values[8], values[3],"
        f" {exprs['priority']}, {exprs['gateway']}, oif, {dev}, {exprs['prefsrc']}, {exprs['src']}, values[2], {exprs['pref']}, ())\n"
    )
    namespace: dict[str, Any] = {"_Route": Route, "_ipv4_format": "%d.%d.%d.%d", "_ipv6_text": _ipv6_text}
    exec(compile(source, f"<route layout {length}>", "exec"), namespace)  # noqa: S102 - our own generated code, no input text
    codec = struct.Struct("".join(fmt))
    if codec.size > length:
        _layouts[length] = None
        return
    getter = itemgetter(*header_positions)
    _layouts[length] = _Layout(codec.unpack_from, getter, getter(tuple(expected_value for expected_value in _expand(expected, header_positions, index))), namespace["build"])


def _expand(expected: list[int], positions: list[int], size: int) -> list[int]:
    # A values-shaped list holding the expected header words at their
    # positions, so the same itemgetter extracts both sides of the check.
    values = [0] * size
    for position, value in zip(positions, expected):
        values[position] = value
    return values
