"""Socket values: :class:`InetSocket` (TCP, UDP over IPv4/IPv6) and
:class:`UnixSocket`, with ``to_json()`` in the shape docs/sock_diag.md
defines: ss's columns (``netid``, ``state``, ``recv_q``, ``send_q``,
``local_address``, ``local_port``, ``peer_address``, ``peer_port``), then
the details.

Pure: imports neither asyncio nor socket.
"""

from __future__ import annotations

import operator
from collections import namedtuple

from ..._extensions import speedups as _speedups
from .constants import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, STATE_NAMES

# typing stays out of `aionlmmap dump sockets` (its import is ~15% of the
# command's start-up); type checkers read the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    from .unix_socket import UnixSocket

__all__ = ["InetSocket", "UnixSocket", "json_text", "json_texts"]

_NETIDS = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}


def _compact(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``;
    json loads on first use (the fast paths write their texts without it)."""
    global _compact
    import json

    _compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    return _compact(value)


if TYPE_CHECKING:

    class _InetFields(NamedTuple):
        family: int
        protocol: int
        state: int
        local_address: str
        local_port: int
        peer_address: str
        peer_port: int
        recv_q: int
        send_q: int
        inode: int
        uid: int
        ifindex: int = 0
        cookie: int = 0
        timer: int = 0
        retrans: int = 0
        expires: int = 0
        #: decoded extensions (tcp_info, meminfo, skmeminfo, cong, mark, ...) when asked for
        extensions: dict[str, Any] | None = None

else:
    # The same fields by collections.namedtuple: typing.NamedTuple compiles
    # each of the 17 (string) annotations into a ForwardRef, ~2 ms at import.
    _InetFields = namedtuple(
        "InetSocket",
        ["family", "protocol", "state", "local_address", "local_port", "peer_address", "peer_port", "recv_q", "send_q", "inode", "uid",
         "ifindex", "cookie", "timer", "retrans", "expires", "extensions"],
        defaults=(0, 0, 0, 0, 0, None),
        module=__name__,
    )  # fmt: skip


class InetSocket(_InetFields):
    """One TCP or UDP socket (``struct inet_diag_msg`` and its attributes).

    A named tuple: a dump makes one per socket, and a tuple is what CPython
    builds fastest (the decoder calls ``tuple.__new__`` directly)."""

    __slots__ = ()

    @property
    def netid(self) -> str:
        return _NETIDS.get(self.protocol, str(self.protocol))

    @property
    def state_name(self) -> str:
        """ss's name of the state (ESTAB, LISTEN, UNCONN, TIME-WAIT, ...)."""
        return STATE_NAMES.get(self.state, str(self.state))

    def to_json(self) -> dict[str, Any]:
        # one unpacking of the tuple instead of a descriptor call per field
        # (a fifth of the time of a dump's to_json() calls)
        family, protocol, state, local, local_port, peer, peer_port, recv_q, send_q, inode, uid, ifindex, cookie, timer, retrans, expires, extensions = self
        out: dict[str, Any] = {
            "netid": _NETIDS.get(protocol) or str(protocol),
            "state": STATE_NAMES.get(state) or str(state),
            "recv_q": recv_q,
            "send_q": send_q,
            "local_address": local,
            "local_port": local_port,
            "peer_address": peer,
            "peer_port": peer_port,
            "family": "inet6" if family == AF_INET6 else "inet",
            "inode": inode,
            "uid": uid,
            "cookie": cookie,
        }
        if ifindex:
            out["ifindex"] = ifindex
        if timer:
            out["timer"] = timer
            out["expires"] = expires
            out["retrans"] = retrans
        if extensions:
            out.update(extensions)
        return out


_JSON_REST = ',"recv_q":%d,"send_q":%d,"local_address":"%s","local_port":%d,"peer_address":"%s","peer_port":%d,"family":"%s","inode":%d,"uid":%d,"cookie":%d'
_templates: dict[tuple[int, int, int], str] = {}
_open_templates: dict[tuple[int, int, int], str] = {}
#: the keys to_json adds after "cookie" when ifindex or a timer is set, in its order
JSON_IFINDEX = ',"ifindex":%d'
JSON_TIMER = ',"timer":%d,"expires":%d,"retrans":%d'


def _json_words(protocol: int, state: int, family: int) -> tuple[str, str]:
    """The fixed parts of a socket's JSON text: its head (netid and state)
    and the family word (the compiled json_texts writes the rest itself)."""
    head = '{"netid":"%s","state":"%s"' % (_NETIDS.get(protocol, str(protocol)), STATE_NAMES.get(state, str(state)))
    return head, "inet6" if family == AF_INET6 else "inet"


def open_template(protocol: int, state: int, family: int) -> str:
    """The %-template of a socket's compact JSON text up to and including
    its cookie, without the closing brace (ifindex and timer keys may
    follow): netid, state and family are in it already."""
    key = (protocol, state, family)
    template = _open_templates.get(key)
    if template is None:
        head, family_word = _json_words(protocol, state, family)
        template = _open_templates[key] = head + _JSON_REST.replace('"family":"%s"', '"family":"%s"' % family_word)
    return template


def closed_template(protocol: int, state: int, family: int) -> str:
    """:func:`open_template` with the closing brace: the whole text of a
    socket without ifindex, timer or extensions."""
    key = (protocol, state, family)
    template = _templates.get(key)
    if template is None:
        template = _templates[key] = open_template(protocol, state, family) + "}"
    return template


def json_text(sock: InetSocket) -> str:
    """``json.dumps(sock.to_json(), separators=(",", ":"))`` for a socket
    without ifindex, timer or extensions, by one %-format with the netid,
    state and family already in the template (the CLI's fast path; tests
    check both give the same text)."""
    if sock[11] or sock[13] or sock[16]:
        return _compact(sock.to_json())
    return closed_template(sock[1], sock[2], sock[0]) % (sock[7], sock[8], sock[3], sock[4], sock[5], sock[6], sock[9], sock[10], sock[12])


#: the values json_text's template takes, in its order, and the template's key
_template_values = operator.itemgetter(7, 8, 3, 4, 5, 6, 9, 10, 12)  # recv_q, send_q, local, port, peer, port, inode, uid, cookie
_template_key = operator.itemgetter(1, 2, 0)  # protocol, state, family


def json_texts(socks: list[InetSocket]) -> list[str]:
    """:func:`json_text` of each socket, templates looked up once per run of
    sockets with the same protocol, state and family (the values taken by
    one itemgetter call: a C loop, not nine subscripts)."""
    out = []
    append = out.append
    key = None
    template = ""
    for sock in socks:
        if sock[11] or sock[13] or sock[16]:
            append(_compact(sock.to_json()))
            continue
        if _template_key(sock) != key:
            key = _template_key(sock)
            template = closed_template(*key)
        append(template % _template_values(sock))
    return out


_pure_json_texts = json_texts
# The compiled twin (aionlmmap/_speedups_sockdiag.pxi) where the compiled
# core is in use and has it.
if _speedups is not None and hasattr(_speedups, "json_texts"):
    json_texts = _speedups.json_texts  # type: ignore[assignment]  # noqa: F811


def __getattr__(name: str) -> Any:
    # UnixSocket is an attrs class: it lives in .unix_socket so that a TCP
    # or UDP dump (``aionlmmap dump sockets -t``) never imports attrs.
    if name == "UnixSocket":
        from .unix_socket import UnixSocket

        return UnixSocket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
