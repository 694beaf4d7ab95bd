"""The service's in-memory view of netlink state, and its bounded change log.

Pure: no asyncio, no sockets. The asyncio side (``broadcast.py``,
``app.py``) feeds events in and reads JSON out; every rule about what a
change *is* lives here, where it is cheap to test.

- :class:`NetState` holds one table per kind (``link``, ``address``,
  ``route``, ``neighbour``, ``rule``, the ``nft_*`` kinds of the
  nf_tables view and ``conntrack``), keyed by the object's ``.key``. It is updated only by
  events (``rtnl.monitor(resync=True)``, the nf_tables view): the HTTP
  endpoints read it, they never re-dump.
- :class:`ChangeLog` numbers the visible changes and keeps the last few
  hundred, so a reconnecting SSE client (``Last-Event-ID``) can be replayed
  what it missed, or told to resync when that is no longer possible.
- :func:`parse_family` / :func:`parse_table` validate query values; bad
  values raise :class:`QueryError`, which the app turns into a 400.

Example::

    state = NetState()
    log = ChangeLog(capacity=512)
    change = state.apply("new", "link", link)      # a Change, or None if nothing changed
    if change is not None:
        log.append(change)
    state.routes(family=socket.AF_INET, table=254)  # list of ip -j dicts
"""

from __future__ import annotations

import json
import secrets
import socket
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

__all__ = [
    "KINDS",
    "COLLECTIONS",
    "ALL_TABLES",
    "Change",
    "ChangeLog",
    "NetState",
    "QueryError",
    "StateObject",
    "encode_key",
    "parse_family",
    "parse_nud",
    "parse_table",
]

#: Event kinds of ``rtnl.monitor`` and the collection name each is served as.
COLLECTIONS: dict[str, str] = {
    "link": "links",
    "address": "addresses",
    "route": "routes",
    "neighbour": "neighbours",
    "rule": "rules",
    # nf_tables objects (nft_view.py): one change per object, so SSE clients
    # see each table, chain, set, element and rule come and go
    "nft_table": "nft_tables",
    "nft_chain": "nft_chains",
    "nft_set": "nft_sets",
    "nft_element": "nft_elements",
    "nft_rule": "nft_rules",
    # the connection tracking table (conntrack_view.py): one change per
    # created, updated or destroyed entry
    "conntrack": "conntrack",
}
KINDS = tuple(COLLECTIONS)
ACTIONS = ("new", "del")

#: ``?table=all``: no table filter.
ALL_TABLES = "all"
# rt_names from <linux/rtnetlink.h> (enum rt_class_t) and iproute2's rt_tables.
_TABLE_NAMES = {"main": 254, "local": 255, "default": 253, "unspec": 0}
_TABLE_NUMBERS = {number: name for name, number in _TABLE_NAMES.items()}
_RT_TABLE_MAIN = 254
_FAMILY_NAMES = {
    "inet": socket.AF_INET,
    "4": socket.AF_INET,
    "ipv4": socket.AF_INET,
    "inet6": socket.AF_INET6,
    "6": socket.AF_INET6,
    "ipv6": socket.AF_INET6,
}
_FAMILY_LABELS = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}


class StateObject(Protocol):
    """What the view needs of an rtnl object (Link, Address, Route, ...)."""

    @property
    def key(self) -> Any: ...

    def to_json(self) -> dict[str, Any]: ...


class QueryError(ValueError):
    """A query parameter the service does not understand (answered with 400)."""


def parse_family(value: str | None) -> int | None:
    """``?family=`` -> AF_INET / AF_INET6, or None for every family.

    Accepts ``inet``, ``inet6`` (iproute2's ``-f`` names), ``4``, ``6``,
    ``ipv4``, ``ipv6`` and ``all``; anything else raises :class:`QueryError`.
    """
    if value is None or value == "all":
        return None
    family = _FAMILY_NAMES.get(value.lower())
    if family is None:
        raise QueryError(f"unknown family {value!r}: use one of inet, inet6, 4, 6, all")
    return family


def parse_table(value: str | None) -> int | str:
    """``?table=`` -> a routing table number, or :data:`ALL_TABLES`.

    Like ``ip route show table X``: missing means ``main`` (254); accepts
    ``main``, ``local``, ``default``, ``all`` or a number 0..2**32-1 (the
    kernel's RTA_TABLE is a u32); anything else raises :class:`QueryError`.
    """
    if value is None:
        return _RT_TABLE_MAIN
    lowered = value.lower()
    if lowered == ALL_TABLES:
        return ALL_TABLES
    if lowered in _TABLE_NAMES:
        return _TABLE_NAMES[lowered]
    # isascii: str.isdigit also accepts other scripts' digits ("٣").
    if value.isascii() and value.isdigit() and int(value) < 2**32:
        return int(value)
    raise QueryError(f"unknown table {value!r}: use main, local, default, all or a table number (0..4294967295)")


def parse_nud(value: str | None) -> bool:
    """``?nud=all`` -> True (every neighbour state, like ``ip neigh show nud
    all``); missing -> False (ip's default view)."""
    if value is None:
        return False
    if value.lower() == "all":
        return True
    raise QueryError(f"unknown nud {value!r}: only 'all' is supported (default: the states ip neigh show lists)")


def _key_part(part: Any) -> Any:
    if part is None or isinstance(part, (bool, int, float, str)):
        return part
    if isinstance(part, (tuple, list)):
        return [_key_part(item) for item in part]
    return str(part)  # ipaddress objects, enums: their text form is their identity


def encode_key(key: Any) -> str:
    """A stable text form of ``obj.key`` (an int or a tuple of ints,
    strings, addresses, None): the page uses it as a row id, so a ``del``
    event finds the row its ``new`` event created."""
    return json.dumps(_key_part(key), separators=(",", ":"))


@attrs.frozen
class Change:
    """One visible change of the view, numbered by the :class:`ChangeLog`.

    ``data`` is the SSE payload, serialized once and shared by every client:
    ``{"action", "kind", "key", "obj"}`` where ``obj`` is the object's
    ``to_json()`` (for ``del``, its last known state).
    """

    seq: int
    action: str
    kind: str
    key: str
    data: str


@attrs.define(eq=False, slots=True)
class _Entry:
    obj: Any
    json: dict[str, Any]  #: obj.to_json(): what the collection endpoint serves
    event_json: dict[str, Any]  #: what SSE clients get (``json`` plus context, see _event_json)
    family: int | None
    table: int | None


def _event_json(kind: str, obj: Any, document: dict[str, Any]) -> dict[str, Any]:
    # An address's to_json() is one ``addr_info`` entry of ``ip -j address
    # show``: it names no device (ip prints it under its link). A change event
    # stands alone, so it carries the link too.
    if kind == "address":
        ifindex = getattr(obj, "ifindex", None)
        if ifindex is not None:
            return {"ifindex": ifindex, "dev": getattr(obj, "dev", None) or f"if{ifindex}", **document}
    return document


def _identity(kind: str, obj: Any) -> Any:
    key = obj.key
    # Two routes may differ only by their device: IPv6 keeps one fe80::/64
    # (and one ff00::/8) per interface, IPv4 allows the same prefix on two
    # devices with NLM_F_APPEND. The view keeps them apart.
    if kind == "route" and isinstance(key, tuple):
        oif = getattr(obj, "oif", None)
        if oif is not None:
            return (*key, oif)
    return key


# <linux/neighbour.h>
_NUD_NOARP = 0x40
_NTF_PROXY = 0x08
_NTF_EXT_LEARNED = 0x10


def _shown_by_ip_neigh(obj: Any) -> bool:
    # iproute2's default filter (ipneigh.c): states 0xff except NOARP; proxy
    # and externally learned entries always shown.
    state, flags = getattr(obj, "state", None), getattr(obj, "flags", 0)
    if not isinstance(state, int):
        return True
    return bool(state & 0xFF & ~_NUD_NOARP) or bool(flags & (_NTF_PROXY | _NTF_EXT_LEARNED))


def _route_table(obj: Any) -> int | None:
    # The rtnl contract puts the table second in a route key
    # (family, table, dst, prefixlen, tos, metric); prefer the attribute.
    table = getattr(obj, "table", None)
    if isinstance(table, int):
        return table
    key = obj.key
    if isinstance(key, tuple) and len(key) > 1 and isinstance(key[1], int):
        return key[1]
    return None


def _family(obj: Any) -> int | None:
    family = getattr(obj, "family", None)
    if isinstance(family, int):
        return family
    key = obj.key
    if isinstance(key, tuple) and key and isinstance(key[0], int):
        return key[0]
    return None


class NetState:
    """The current links, addresses, routes, neighbours and rules.

    Only :meth:`apply` changes it. Readers get ``to_json()`` dicts computed
    once per change (never per request).
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, _Entry]] = {kind: {} for kind in KINDS}

    def apply(self, action: str, kind: str, obj: StateObject) -> tuple[str, str, str, dict[str, Any]] | None:
        """Apply one monitor event; return ``(action, kind, key, json)`` if
        the view changed, None if it did not (a repeated "new" with the same
        content, a "del" of something unknown). Raises ValueError for an
        unknown action or kind (the caller counts and skips it)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown event action {action!r} (expected 'new' or 'del')")
        table = self._tables.get(kind)
        if table is None:
            raise ValueError(f"unknown event kind {kind!r} (expected one of {', '.join(KINDS)})")
        key = self.key_of(kind, obj)
        if action == "del":
            entry = table.pop(key, None)
            if entry is None:
                return None
            # The kernel's RTM_DEL* carries the object as it was; prefer it,
            # and fall back to what we knew.
            document = _safe_json(obj)
            return ("del", kind, key, entry.event_json if document is None else _event_json(kind, obj, document))
        document = obj.to_json()
        entry = table.get(key)
        if entry is not None and entry.json == document:
            return None
        event_document = _event_json(kind, obj, document)
        table[key] = _Entry(obj, document, event_document, _family(obj), _route_table(obj) if kind == "route" else None)
        return ("new", kind, key, event_document)

    @staticmethod
    def key_of(kind: str, obj: StateObject) -> str:
        """The encoded key the view files ``obj`` under."""
        return encode_key(_identity(kind, obj))

    def forget(self, kind: str, key: str) -> tuple[str, str, str, dict[str, Any]] | None:
        """Remove an object by its encoded key (it vanished while the source
        was down); return the ``del`` change, or None if it was not there."""
        entry = self._tables[kind].pop(key, None)
        return None if entry is None else ("del", kind, key, entry.event_json)

    def keys(self) -> list[tuple[str, str]]:
        """Every ``(kind, encoded key)`` in the view."""
        return [(kind, key) for kind, table in self._tables.items() for key in table]

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())

    def count(self, kind: str) -> int:
        return len(self._tables[kind])

    # -- readers -----------------------------------------------------------------
    def links(self) -> list[dict[str, Any]]:
        """Links in ifindex order, as ``ip -j link show``."""
        entries = sorted(self._tables["link"].values(), key=lambda entry: _ifindex(entry.obj))
        return [entry.json for entry in entries]

    def addresses(self, family: int | None = None) -> list[dict[str, Any]]:
        """As ``ip -j [-4|-6] address show``: each link with its ``addr_info``
        list (IPv4 before IPv6). With a family, links without an address of
        that family are left out, as ip does."""
        by_link: dict[int, list[_Entry]] = {}
        for entry in self._select("address", family):
            by_link.setdefault(getattr(entry.obj, "ifindex", 0), []).append(entry)
        out = []
        for link in self.links():
            entries = by_link.pop(link.get("ifindex", 0), [])
            if entries or family is None:
                out.append({**link, "addr_info": _addr_info(entries)})
        # Addresses whose link we have not seen (yet): still served, under their index.
        for ifindex, entries in sorted(by_link.items()):
            out.append({"ifindex": ifindex, "addr_info": _addr_info(entries)})
        return out

    def routes(self, family: int | None = None, table: int | str = _RT_TABLE_MAIN) -> list[dict[str, Any]]:
        """As ``ip -j route show table T`` (default main) or ``... table all``
        (``ALL_TABLES``), optionally of one family. Like ip, a route names its
        table only when every table is shown (and it is not main)."""
        entries = self._select("route", family)
        if table == ALL_TABLES:
            return [entry.json for entry in entries]
        return [_without_table(entry.json) for entry in entries if entry.table == table]

    def neighbours(self, family: int | None = None, *, every_state: bool = False) -> list[dict[str, Any]]:
        """As ``ip -j neigh show``: entries whose only state is NOARP or NONE
        (multicast, point-to-point) are left out unless ``every_state``
        (``ip neigh show nud all``)."""
        entries = self._select("neighbour", family)
        if not every_state:
            entries = [entry for entry in entries if _shown_by_ip_neigh(entry.obj)]
        return [entry.json for entry in entries]

    def rules(self, family: int | None = None) -> list[dict[str, Any]]:
        return [entry.json for entry in self._select("rule", family)]

    def _select(self, kind: str, family: int | None) -> list[_Entry]:
        entries: Iterable[_Entry] = self._tables[kind].values()
        if family is not None:
            entries = [entry for entry in entries if entry.family == family]
        return list(entries)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Everything, as ``{collection: {key: json}}`` (the SSE resync
        payload; addresses carry their ``ifindex`` and ``dev`` as in change events)."""
        return {COLLECTIONS[kind]: {key: entry.event_json for key, entry in table.items()} for kind, table in self._tables.items()}

    def objects(self, kind: str) -> list[Any]:
        """The rtnl objects of one kind (for callers that need more than JSON)."""
        return [entry.obj for entry in self._tables[kind].values()]


def _addr_info(entries: list[_Entry]) -> list[dict[str, Any]]:
    return [entry.json for entry in sorted(entries, key=lambda entry: entry.family != socket.AF_INET)]


def _without_table(document: dict[str, Any]) -> dict[str, Any]:
    if "table" not in document:
        return document
    return {name: value for name, value in document.items() if name != "table"}


def _safe_json(obj: StateObject) -> dict[str, Any] | None:
    try:
        return obj.to_json()
    except Exception:  # a partial RTM_DEL* may lack fields to_json needs
        return None


def _ifindex(obj: Any) -> int:
    index = getattr(obj, "ifindex", None)
    if isinstance(index, int):
        return index
    key = obj.key
    return key if isinstance(key, int) else 0


def family_label(family: int | None) -> str:
    return _FAMILY_LABELS.get(family, str(family)) if family is not None else "all"


def table_label(table: int | str) -> str:
    return table if isinstance(table, str) else _TABLE_NUMBERS.get(table, str(table))


class ChangeLog:
    """Numbered changes, the last ``capacity`` kept for ``Last-Event-ID`` replay.

    Event ids are ``"<epoch>-<seq>"``: the epoch is random per process, so a
    client that reconnects to a restarted service (whose numbering started
    over) is told to resync instead of being replayed the wrong changes.
    """

    def __init__(self, capacity: int = 1024, epoch: str | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.epoch = epoch or secrets.token_hex(4)
        self._changes: deque[Change] = deque(maxlen=capacity)
        self._seq = 0

    @property
    def seq(self) -> int:
        """Number of the latest change (0 before the first)."""
        return self._seq

    @property
    def last_event_id(self) -> str:
        """The event id of the current state (what a resync is stamped with)."""
        return self.event_id(self._seq)

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def append(self, action: str, kind: str, key: str, document: dict[str, Any]) -> Change:
        """Number a change, serialize its SSE payload once, and keep it."""
        self._seq += 1
        data = json.dumps({"action": action, "kind": kind, "key": key, "obj": document}, separators=(",", ":"))
        change = Change(self._seq, action, kind, key, data)
        self._changes.append(change)
        return change

    def __len__(self) -> int:
        return len(self._changes)

    def since(self, last_event_id: str | None) -> list[Change] | None:
        """The changes after ``last_event_id``, or None when they cannot be
        replayed (no id, another epoch, malformed, in the future, or older
        than the buffer): the client must then resync."""
        if not last_event_id:
            return None
        epoch, _, number = last_event_id.strip().partition("-")
        if epoch != self.epoch or not (number.isascii() and number.isdigit()):
            return None
        seq = int(number)
        if seq > self._seq:
            return None
        if seq == self._seq:
            return []
        oldest = self._changes[0].seq if self._changes else self._seq + 1
        if seq + 1 < oldest:
            return None  # evicted: the client missed changes we no longer have
        return [change for change in self._changes if change.seq > seq]
