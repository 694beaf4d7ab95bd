"""Fast path for decoding route dumps: learned message layouts.

Pure: imports neither asyncio nor socket.

The kernel builds every route of a dump with the same code
(``fib_dump_info`` / ``rt6_fill_node``), so routes of one kind share one
attribute layout: same attributes, same order, same sizes, hence the same
payload length. After the generic walk decoded one route, :func:`learn`
compiles its layout into one ``struct.Struct`` that unpacks the rtmsg, every
nlattr header and every wanted value in a single call, and one generated
function that unpacks into locals, *checks every nlattr header* against the
learned ones before trusting the values (on any mismatch it returns None and
the caller falls back to the generic walk), and writes the Route's slots
directly (see ``rtnl_objects._RouteUnderConstruction``). A second variant
reads the nlmsghdr too and checks its length and type the same way:
:class:`RouteDecoders` steps through a dump chunk with it, so a
100,000-route dump is then one call, one unpack and one object per route,
and no header read of its own.

:class:`RouteTexts` goes one step further for ``aionlmmap dump routes
--json``: per layout, the JSON text of a route is a template (learned from
real routes) around its destination address, so the text is made from the
message without a Route or a dict.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any, Generic, TypeVar

import attrs

from ..._extensions import speedups as _speedups
from ...constants import NLMSG_HDRLEN, RTM_NEWROUTE
from ...address_text import DECIMAL, DOTTED, ipv6_text
from .constants import (
    RTA_CACHEINFO,
    RTA_DST,
    RTA_GATEWAY,
    RTA_METRICS,
    RTA_MULTIPATH,
    RTA_OIF,
    RTA_PREF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_SRC,
    RTA_TABLE,
)
from .route_values import CACHEINFO, expires_seconds, metrics
from .objects import _ROUTE_BUILDER_GLOBALS, Nexthop, Route, _route_builder_source, route_extra

__all__ = ["decode", "learn", "is_known", "clear", "Decoder", "RouteDecoders", "RouteTexts"]

#: ``decoder(buffer, start, names)``: the route whose payload starts at
#: ``start``, or None when the message does not match the learned layout.
Decoder = Callable[[Any, int, dict[int, str] | None], Route | None]

T = TypeVar("T")
_MAX_LAYOUTS = 64

_U32_ATTRIBUTES = {RTA_TABLE: "table", RTA_OIF: "oif", RTA_PRIORITY: "priority"}
_ADDRESS_ATTRIBUTES = {RTA_DST: "dst", RTA_GATEWAY: "gateway", RTA_PREFSRC: "prefsrc", RTA_SRC: "src"}
#: An nlattr header (u16 nla_len, u16 nla_type) read as one native u32, so
#: checking it is one integer comparison.
_NLATTR = struct.Struct("=HH")
_NLATTR_WORD = struct.Struct("=I")
#: nlmsg_len and nlmsg_type, the start of a RouteTexts key
_LENGTH_AND_TYPE = struct.Struct("=IH")

#: Layouts per payload length: routes of different kinds can have the same
#: length (a local-table route's RTA_TABLE, RTA_DST, RTA_OIF, RTA_PREFSRC
#: and a static route's RTA_TABLE, RTA_DST, RTA_GATEWAY, RTA_OIF), so a
#: length keeps up to this many, each guarded by its own header checks
#: (the attribute type sequence), tried in the order learned.
_MAX_VARIANTS = 4
#: payload length -> decoder (trying each layout of that length), or None
#: for a length the generic walk keeps
_layouts: dict[int, Decoder | None] = {}
#: payload length -> the attribute sequences tried, learned or not: each
#: is its nlattr headers (nla_len, nla_type as sent) joined, which is the
#: (type, size) sequence, in the form the compiled decoder compares in place
_signatures: dict[int, list[bytes]] = {}
#: payload length -> each layout's decoder, in the order learned
_decoders: dict[int, list[Decoder]] = {}
#: payload length -> each layout's ``decode(buffer, offset)`` of a whole
#: message, and its globals (RouteDecoders binds ``_names`` in a copy)
_message_decoders: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
#: payload length -> what RouteTexts reads of a message per layout (see
#: learn()), and the code of each text function with its unpack, compiled
#: on first use
_key_segments: dict[int, list[list[tuple[str, int]]]] = {}
_text_codes: dict[tuple[int, int], tuple[CodeType, Callable[..., tuple[Any, ...]]]] = {}
#: Templates kept per layout and dump, at most (a route table whose every
#: route has its own gateway still costs only a bounded dict).
_MAX_TEMPLATES = 4096
#: Stands for the destination address while a template is rendered: it
#: cannot occur in the rest of a route's text (interface names have no
#: "/" or whitespace, dev_valid_name()), and RouteTexts checks that anyway.
_ADDRESS_MARKER = " /dst/ "

def clear() -> None:
    _layouts.clear()
    _signatures.clear()
    _decoders.clear()
    _message_decoders.clear()
    _key_segments.clear()
    _text_codes.clear()


def is_known(length: int) -> bool:
    """Whether a payload length takes no more layouts: the generic walk
    records a route's attributes for :func:`learn` only while this is
    False (it runs only for routes no learned layout fitted)."""
    tried = _signatures.get(length)
    return tried is not None and len(tried) >= _MAX_VARIANTS


def _chain(functions: list[Callable[..., T | None]]) -> Callable[..., T | None]:
    """One function trying each layout's in turn (each checks its headers
    and returns None on a mismatch); a single layout's is itself."""
    if len(functions) == 1:
        return functions[0]
    ordered = tuple(functions)

    def chained(*args: Any) -> T | None:
        for function in ordered:
            item = function(*args)
            if item is not None:
                return item
        return None

    return chained


def decode(buffer: Any, start: int, end: int, names: dict[int, str] | None) -> Route | None:
    """The route at ``buffer[start:end]`` if a learned layout fits it exactly, else None."""
    decoder = _layouts.get(end - start)
    if decoder is None:
        return None
    return decoder(buffer, start, names)


def learn(length: int, spans: list[tuple[int, int, int, int]]) -> None:
    """Compile the layout of a route payload of ``length`` bytes whose
    attributes were ``(raw nla_type, header offset, value offset, value length)``
    (offsets from the payload start). Layouts with attributes this fast
    path does not decode by position (RTA_VIA, RTA_ENCAP, ...) are skipped.
    A length keeps up to ``_MAX_VARIANTS`` layouts of different attribute
    sequences."""
    signature = b"".join([_NLATTR.pack(value_length + 4, raw_type) for raw_type, _, _, value_length in spans])
    tried = _signatures.get(length)
    if tried is None:
        if len(_signatures) >= _MAX_LAYOUTS:
            return
        tried = _signatures[length] = []
    if signature in tried or len(tried) >= _MAX_VARIANTS:
        return
    tried.append(signature)
    _layouts.setdefault(length, None)
    types = [raw_type & 0x3FFF for raw_type, _, _, _ in spans]
    if len(set(types)) != len(types):
        # An attribute twice (never from fib_dump_info; fuzzed input): the
        # generic walk keeps the last one, per field; a layout reads each
        # position, so it would not agree. Leave such payloads to the walk.
        return
    # struct rtmsg {u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags}
    fmt = ["=BBBBBBBBI"]
    targets = ["family", "dst_len", "src_len", "tos", "rtm_table", "protocol", "scope", "route_type", "flags"]  # unpacked locals
    checks: list[str] = []
    # What RouteTexts reads: ("key", size) bytes the decoder reads, ("dst", size)
    # the destination address, ("skip", size) bytes the decoder skips.
    segments: list[tuple[str, int]] = [("key", 12)]
    position = 12
    values = {field: "None" for field in ("oif", "priority", "dst", "gateway", "prefsrc", "src", "pref", "extra")}
    extra: dict[str, str] = {}  # RouteExtra fields this layout reads, and their expressions
    extra_when: list[str] = []  # when the route has a RouteExtra at all
    assignments: list[str] = []  # locals computed after the header checks
    multipath: tuple[str, int] | None = None  # the RTA_MULTIPATH local and its value offset
    for raw_type, header_offset, value_offset, value_length in spans:
        attr_type = raw_type & 0x3FFF
        if header_offset > position:
            fmt.append(f"{header_offset - position}x")
            segments.append(("skip", header_offset - position))
        header = f"h{len(checks)}"
        fmt.append("I")
        targets.append(header)
        checks.append(f"{header} != {_NLATTR_WORD.unpack(_NLATTR.pack(value_length + 4, raw_type))[0]}")
        segments.append(("key", 4))
        local = f"v{len(targets)}"
        if attr_type in _U32_ATTRIBUTES and value_length == 4:
            fmt.append("I")
            targets.append(local)
            values[_U32_ATTRIBUTES[attr_type]] = local
        elif attr_type in _ADDRESS_ATTRIBUTES and value_length == 4:
            fmt.append("4B")
            octets = [f"{local}_{index}" for index in range(4)]
            targets += octets
            values[_ADDRESS_ATTRIBUTES[attr_type]] = f'f"{_dotted_quad(octets)}"'
        elif attr_type in _ADDRESS_ATTRIBUTES and value_length == 16:
            fmt.append("16s")
            targets.append(local)
            values[_ADDRESS_ATTRIBUTES[attr_type]] = f"_ipv6_text({local})"
        elif attr_type == RTA_PREF and value_length == 1:
            fmt.append("B")
            targets.append(local)
            values["pref"] = local
        elif attr_type in _U32_ATTRIBUTES or attr_type in _ADDRESS_ATTRIBUTES or attr_type == RTA_PREF:
            return  # odd size: leave it to the generic walk (which raises)
        elif attr_type == RTA_CACHEINFO and value_length == CACHEINFO.size:
            # rt6_fill_node() sends it with every IPv6 route: read
            # rta_expires and rta_error; the dst counters (clntref,
            # lastuse, used: ``ip -s``'s users, age, used) are 0 for a FIB
            # route (no dst), and a route with any is left to the generic
            # walk (a check), so they are part of a text template's key.
            fmt += ["II", "iI", "I", "12x"]
            ticks, error = f"{local}_expires", f"{local}_error"
            counters = [f"{local}_clntref", f"{local}_lastuse"]
            targets += [*counters, ticks, error, f"{local}_used"]
            checks.append(f"{counters[0]} or {counters[1]} or {local}_used")
            extra["expires"] = f"_expires_seconds({ticks}) if {ticks} else None"
            extra["error"] = f"{error} or None"
            extra_when.append(f"{ticks} != 0 or {error} != 0")
            segments += [("key", 20), ("skip", 12)]
            position = value_offset + value_length
            continue
        elif attr_type == RTA_METRICS:
            # Routes of one table mostly share their metrics (mtu 1400...):
            # the blob is read whole and decoded once per distinct value.
            # A blob of no printable member (empty, or RTAX_LOCK 0 alone)
            # gives no RouteExtra, as in the generic walk.
            fmt.append(f"{value_length}s")
            targets.append(local)
            assignments.append(f"{local}_metrics = _metrics({local})")
            extra["metrics"] = f"{local}_metrics"
            extra_when.append(f"{local}_metrics")
        elif attr_type == RTA_MULTIPATH:
            # One rtnexthop (and its RTA_GATEWAY...) per path
            # (fib_add_multipath_nexthop(), rt6_fill_node()); the multipath
            # routes of a table mostly share their paths: the blob is read
            # whole and, per dump, decoded once per distinct value.
            fmt.append(f"{value_length}s")
            targets.append(local)
            multipath = (local, value_offset)
        else:
            # Any other attribute (RTA_NH_ID, RTA_VIA,
            # RTA_FLOW, RTA_ENCAP, ...) needs the generic walk: a layout
            # that skipped it would drop a key ip prints.
            return
        segments.append(("dst" if attr_type == RTA_DST else "key", value_length))
        position = value_offset + value_length
    if extra:
        members = ", ".join(f"{field}={expression}" for field, expression in extra.items())
        values["extra"] = f"_RouteExtra({members}) if {' or '.join(extra_when)} else None"
    # RTA_TABLE carries the full 32-bit id; without it rtm_table is the table.
    values.setdefault("table", "rtm_table")
    codec = struct.Struct("".join(fmt))
    if codec.size > length:
        return
    values.update(
        family="family", dst_len="dst_len", type="route_type", protocol="protocol", scope="scope", flags="flags", tos="tos",
        src_len="src_len", nexthops="()",
        dev="None" if values["oif"] == "None" else f"names.get({values['oif']}) if names else None",
    )  # fmt: skip
    if multipath is not None:
        values["nexthops"] = f"_multipath({multipath[0]}, buffer, start + {multipath[1]}, names, None)"
    decoder, _ = _compile_decoder(length, fmt, targets, checks, values, assignments)
    decoders = _decoders.setdefault(length, [])
    decoders.append(decoder)
    _layouts[length] = _chain(decoders)
    # The same decoder reading the nlmsghdr in front too, for RouteDecoders,
    # which steps from message to message without reading headers: the
    # header is checked like the attribute headers (nlmsg_len and
    # RTM_NEWROUTE; flags, seq and portid do not matter to a route). Its
    # interface names are a global (_names), bound per dump.
    if values["dev"] != "None":
        values["dev"] = f"_names.get({values['oif']}) if _names else None"
    if multipath is not None:
        values["nexthops"] = f"_multipath({multipath[0]}, buffer, start + {NLMSG_HDRLEN + multipath[1]}, _names, _nexthop_cache)"
    _message_decoders.setdefault(length, []).append(_compile_decoder(
        length, ["=IH10x" + fmt[0][1:], *fmt[1:]], ["message_length", "message_type", *targets],
        [f"message_length != {length + NLMSG_HDRLEN}", f"message_type != {RTM_NEWROUTE}", *checks], values, assignments, "buffer, start",
    ))  # fmt: skip
    # RouteTexts reads whole messages too; the nlmsghdr is part of its key.
    _key_segments.setdefault(length, []).append([("key", NLMSG_HDRLEN), *segments])


def _compile_decoder(
    length: int, fmt: list[str], targets: list[str], checks: list[str], values: dict[str, str], assignments: list[str],
    parameters: str = "buffer, start, names",
) -> tuple[Any, dict[str, Any]]:
    """A generated decoder and its globals."""
    prelude = f"    {', '.join(targets)}, = _unpack(buffer, start)\n"
    if checks:
        prelude += f"    if {' or '.join(checks)}:\n        return None\n"
    prelude += "".join(f"    {line}\n" for line in assignments)
    namespace: dict[str, Any] = {**_ROUTE_BUILDER_GLOBALS, **_text_globals(struct.Struct("".join(fmt)).unpack_from)}
    source = _route_builder_source("decode", parameters, values, prelude)
    exec(compile(source, f"<route layout {length}>", "exec"), namespace)  # noqa: S102 - our own generated code, no input text
    return namespace["decode"], namespace


def _compile_text(length: int, segments: list[tuple[str, int]]) -> tuple[CodeType, Callable[..., tuple[Any, ...]]]:
    """The code of a RouteTexts text function for one layout, and its unpack.

    It reads every byte the decoder reads except the destination address
    as a few ``bytes`` (runs of adjacent bytes), which together are the
    template key: the headers (the nlmsghdr in front, then every nlattr
    header) are part of the key, so a template found is one learned from a
    message that passed the decoder's header checks, and the text function
    need not check them again; a message of another length or type misses,
    and its miss returns None."""
    merged: list[list[Any]] = []
    for kind, size in segments:
        if merged and merged[-1][0] == kind and kind != "dst":
            merged[-1][1] += size
        else:
            merged.append([kind, size])
    fmt = ["="]
    targets: list[str] = []
    keys: list[str] = []
    address = None
    for kind, size in merged:
        if kind == "skip":
            fmt.append(f"{size}x")
        elif kind == "key":
            fmt.append(f"{size}s")
            keys.append(f"k{len(keys)}")
            targets.append(keys[-1])
        elif size == 4:
            fmt.append("4B")
            octets = ["a0", "a1", "a2", "a3"]
            targets += octets
            address = _dotted_quad(octets)
        else:
            fmt.append("16s")
            targets.append("a0")
            address = "{_ipv6_text(a0)}"
    finish = "    return template\n" if address is None else f'    return f"{{template[0]}}{address}{{template[1]}}"\n'
    source = (
        "def text(buffer, offset):\n"
        f"    {', '.join(targets)}, = _unpack(buffer, offset)\n"
        f"    key = {' + '.join(keys)}\n"
        "    template = _templates.get(key)\n"
        "    if template is None:\n"
        "        return _miss(key, buffer, offset)\n"
        f"{finish}"
    )
    unpack = struct.Struct("".join(fmt)).unpack_from
    namespace = _text_globals(unpack)
    exec(compile(source, f"<route text {length}>", "exec"), namespace)  # noqa: S102 - our own generated code, no input text
    return namespace["text"].__code__, unpack


def _dotted_quad(octets: list[str]) -> str:
    """f-string fields that spell the four octet locals as a dotted quad."""
    return f"{{_DOTTED[{octets[0]}]}}{{_DOTTED[{octets[1]}]}}{{_DOTTED[{octets[2]}]}}{{_DECIMAL[{octets[3]}]}}"


def _text_globals(unpack: Callable[..., tuple[Any, ...]]) -> dict[str, Any]:
    return {"_unpack": unpack, "_DOTTED": DOTTED, "_DECIMAL": DECIMAL, "_ipv6_text": ipv6_text, "_expires_seconds": expires_seconds, "_metrics": metrics,
            "_RouteExtra": route_extra, "_multipath": _multipath, "_nexthop_cache": None}  # fmt: skip


def _multipath(raw: bytes, buffer: Any, start: int, names: dict[int, str] | None, cache: dict[bytes, tuple[Nexthop, ...]] | None) -> tuple[Nexthop, ...]:
    """The nexthops of the RTA_MULTIPATH whose payload ``raw`` starts at
    ``buffer[start]``, decoded as the generic walk decodes them (so a bad
    rtnexthop raises the same DecodeError, naming offsets in ``buffer``);
    with a per-dump ``cache``, once per distinct payload."""
    if cache is not None:
        known = cache.get(raw)
        if known is not None:
            return known
    from .codec import _decode_nexthops  # rtnl_codec imports this module

    nexthops = _decode_nexthops(buffer, start, start + len(raw), names)
    if cache is not None and len(cache) < _MAX_TEMPLATES:
        cache[raw] = nexthops
    return nexthops


class _PerDump(Generic[T]):
    """Per dump, and per learned layout, a generated ``function(buffer,
    offset)`` that makes the item (a Route, or a route's text) of the
    RTM_NEWROUTE message at ``offset``, or returns None when the message is
    not one of its layout. They live as long as the dump: they hold
    interface names, which change between dumps.

    :meth:`walk` makes the items of a whole dump chunk."""

    def __init__(self, names: dict[int, str] | None, decode_route: Callable[..., Route]) -> None:
        self._names = names
        self._decode_route = decode_route
        #: RTA_MULTIPATH payload -> its nexthops, for this dump's names
        self._nexthop_cache: dict[bytes, tuple[Nexthop, ...]] = {}
        #: payload length -> ``function(buffer, offset)``: the item of the
        #: message at ``offset``, or None when it is not an RTM_NEWROUTE of
        #: this layout (then read its header and call :meth:`slow`).
        self.functions: dict[int, Callable[[Any, int], T | None]] = {}
        #: payload length -> each layout's function, in the order learned
        #: (:meth:`walk` tries them; ``functions`` chains them)
        self.variants: dict[int, tuple[Callable[[Any, int], T | None], ...]] = {}

    def _item(self, route: Route) -> T:
        raise NotImplementedError

    def _function(self, length: int, variant: int) -> Callable[[Any, int], T | None]:
        raise NotImplementedError

    def slow(self, buffer: Any, start: int, end: int) -> T:
        """The item of a message no function handled (payload at
        ``buffer[start:end]``): decoded by the generic walk, which learns
        its layout if it has one; the next message of this length then has
        a function."""
        item = self._item(self._decode_route(buffer, start, end, self._names))
        length = end - start
        learned = _key_segments.get(length)
        if learned is not None and len(self.variants.get(length, ())) != len(learned):
            variants = self.variants[length] = tuple(self._function(length, variant) for variant in range(len(learned)))
            self.functions[length] = _chain(list(variants))
        return item

    def walk(self, buffer: Any, body: int) -> list[T]:
        """The items of the RTM_NEWROUTE messages in ``buffer[:body]``,
        whose headers were checked (``Ring.dump_chunks``).

        After a route, the messages that follow are mostly of its layout
        (one kernel fill function made them all): its function is tried on
        each in turn, and as a function checks the nlmsghdr and every
        nlattr header itself, no header is read here until one differs.
        Where a length has several layouts, the one that decoded the
        route is the one tried on the next messages."""
        items: list[T] = []
        append = items.append
        all_variants = self.variants
        offset = 0
        while offset < body:
            length, msg_type = _LENGTH_AND_TYPE.unpack_from(buffer, offset)
            start = offset
            offset = (offset + length + 3) & ~3
            if msg_type != RTM_NEWROUTE:
                continue
            item = None
            variants = all_variants.get(length - NLMSG_HDRLEN)
            if variants is not None:
                for function in variants:
                    item = function(buffer, start)
                    if item is not None:
                        break
            if item is not None:
                append(item)
            else:
                append(self.slow(buffer, start + NLMSG_HDRLEN, start + length))
                variants = all_variants.get(length - NLMSG_HDRLEN)  # slow() may have made one
                if variants is None:
                    continue
                function = variants[-1]
            step = offset - start
            last = body - length  # the last offset a message of this length fits at
            while offset <= last:
                item = function(buffer, offset)
                if item is None:
                    break  # another kind of message: read its header
                append(item)
                offset += step
        return items

    def chunk(self, frame: Any, body: int | list[Any]) -> list[T]:
        """The items of one ``Ring.dump_chunks`` step ``(frame, body)``."""
        if body.__class__ is int:
            return self.walk(frame.buffer, body)  # type: ignore[arg-type]
        return self.walk_messages(frame.buffer, body)  # type: ignore[arg-type]

    def walk_messages(self, buffer: Any, messages: list[Any]) -> list[T]:
        """The items of the RTM_NEWROUTE messages among ``messages``
        (:class:`Message` tuples, for chunks the ring routed one by one)."""
        return [self.slow(buffer, msg[4], msg[5]) for msg in messages if msg[0] == RTM_NEWROUTE]


class RouteDecoders(_PerDump[Route]):
    """The routes of one dump (``rtnl.routes()``). Its functions are the
    learned layout decoders reading the whole message: they check the
    nlmsghdr as they check the nlattr headers, and find interface names in
    this dump's ``names``."""

    def _item(self, route: Route) -> Route:
        return route

    def _function(self, length: int, variant: int) -> Callable[[Any, int], Route | None]:
        decoder, namespace = _message_decoders[length][variant]
        return FunctionType(decoder.__code__, {**namespace, "_names": self._names, "_nexthop_cache": self._nexthop_cache})  # type: ignore[return-value]


class RouteTexts(_PerDump[str]):
    """The text ``render(route)`` of every route of one dump, made straight
    from the messages where a learned layout fits (``aionlmmap dump routes
    --json`` writes 100,000 of them), with no Route object or dict.

    What ``Route.to_json()`` makes of a route depends on its destination
    address only through the ``"dst"`` value, which holds the address text
    verbatim. So the text of a route splits into a *template*, the text
    before and after the address, which depends only on the other bytes of
    the message the decoder reads (nlmsghdr, rtmsg, attribute headers,
    table, interface, gateway, metric, ...), and the address itself. Per
    layout, the generated ``text(buffer, offset)`` unpacks those other
    bytes as the template key, looks the template up, and formats only the
    address: in a big table nearly every route finds a template (there is
    one per interface, gateway, metric...).

    A template is learned from a real route: its full ``render(route)`` text
    is kept, the same route with a marker for the address is rendered, and
    the template is kept only if the marker occurs exactly once and putting
    the address back gives the full text again. ``render`` must therefore
    use ``route.dst`` only through the ``"dst"`` text of ``to_json()``.
    At most ``_MAX_TEMPLATES`` are kept per layout.
    """

    def __init__(self, render: Callable[[Route], str], names: dict[int, str] | None, decode_route: Callable[..., Route]) -> None:
        super().__init__(names, decode_route)
        self._render = render

    def _item(self, route: Route) -> str:
        return self._render(route)

    def _function(self, length: int, variant: int) -> Callable[[Any, int], str | None]:
        if (length, variant) not in _text_codes:
            _text_codes[length, variant] = _compile_text(length, _key_segments[length][variant])
        code, unpack = _text_codes[length, variant]
        decoder = _decoders[length][variant]
        render, names = self._render, self._names
        templates: dict[bytes, Any] = {}
        header = _LENGTH_AND_TYPE.pack(length + NLMSG_HDRLEN, RTM_NEWROUTE)

        def miss(key: bytes, buffer: Any, offset: int) -> str | None:
            if key[:6] != header:
                return None  # another message: the caller reads its header
            route = decoder(buffer, offset + NLMSG_HDRLEN, names)
            if route is None:
                return None  # headers differ from the layout's: the walk decodes it
            text = render(route)
            if len(templates) < _MAX_TEMPLATES:
                if route.dst is None:
                    templates[key] = text
                else:
                    before, marker, after = render(attrs.evolve(route, dst=_ADDRESS_MARKER)).partition(_ADDRESS_MARKER)
                    if marker and _ADDRESS_MARKER not in after and before + route.dst + after == text:
                        templates[key] = (before, after)
            return text

        return FunctionType(code, {**_text_globals(unpack), "_templates": templates, "_miss": miss})  # type: ignore[return-value]


# The compiled twin (aionlmmap/_speedups_routes.pxi) walks a chunk with the
# compiled decode_route, which needs no learned layout; RouteTexts keeps the
# learned texts. Pure Python is selected by aionlmmap._extensions.
_pure_route_walk = RouteDecoders.walk
if _speedups is not None:
    RouteDecoders.walk = _speedups.route_walk  # type: ignore[assignment]
