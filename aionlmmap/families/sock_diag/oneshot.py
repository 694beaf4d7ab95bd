"""One socket dump without an event loop: what ``aionlmmap dump sockets`` runs.

A one-shot command reads one dump and exits, as ``ss`` does. Importing
asyncio (with ssl, subprocess and concurrent.futures) and setting up a
ring cost it more than the whole of ``ss -tanH`` does for 10,000 sockets
(measured: ``python -c "import asyncio"`` alone takes twice ss's wall time),
so this reads the dump with blocking ``recv_into`` on a plain
NETLINK_SOCK_DIAG socket and decodes each datagram with the same codec
(:func:`.codec.decode_inet_chunk`, :func:`.codec.decode_unix`) as the
ring-based :class:`.client.SockDiagClient`, which stays the library's API;
:func:`json_chunks` gives the command its JSON text per datagram
(:func:`.codec.inet_chunk_json`) and reads TCP of both families in one
TCPDIAG_GETSOCK walk.

Each datagram the kernel sends (one ``netlink_dump`` pass, at most 32 KiB)
is walked once for its control messages: NLMSG_DONE ends the dump,
NLMSG_ERROR or a DONE carrying an error raises :class:`NetlinkError`, and
NLM_F_DUMP_INTR raises :class:`DumpInterruptedError` after the last chunk,
as ``ring.dump()`` does.

>>> from aionlmmap.families.sock_diag import oneshot
>>> for chunk in oneshot.socket_chunks(tcp=True):
...     print(len(chunk))
"""

from __future__ import annotations

import _socket
import errno
import struct
from collections.abc import Iterable, Iterator

from ...constants import NETLINK_EXT_ACK, NETLINK_SOCK_DIAG, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, SOL_NETLINK
from ...errors import DecodeError, DumpInterruptedError, NetlinkError
from ...message import Message, header_run
from . import codec
from . import constants as c

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

    from ..._sys import NetnsSpec

__all__ = ["socket_chunks", "json_chunks", "dump_chunks"]

#: larger than any datagram of a dump (netlink_dump allocates at most 32 KiB,
#: more only when a single message needs it, as the kernel's own
#: NLMSG_GOODSIZE rounding allows)
_BUFFER_SIZE = 1 << 17
_S32 = struct.Struct("=i")
_FAMILIES = {None: (c.AF_INET, c.AF_INET6), 0: (c.AF_INET, c.AF_INET6), 4: (c.AF_INET,), 6: (c.AF_INET6,), c.AF_INET: (c.AF_INET,), c.AF_INET6: (c.AF_INET6,)}


def _raise_error(buffer: Any, offset: int, length: int) -> None:
    # parse_error gives the extack text; the protocol module (and attrs)
    # load only on this path.
    from ...message import iter_messages
    from ...protocol import parse_error

    message = next(iter_messages(bytes(buffer[offset : offset + length])))
    raise parse_error(message).to_exception()


def dump_chunks(sock: _socket.socket, request: Message, buffer: bytearray) -> Iterator[int]:
    """Send the dump ``request`` on the blocking ``sock`` and yield, for each
    datagram, how many bytes of ``buffer`` hold it (data messages, and the
    NLMSG_DONE decoders skip); the buffer is reused for the next one."""
    sock.send(request.encode())
    view = memoryview(buffer)
    interrupted = False
    try:
        while True:
            size = sock.recv_into(view)
            offset = 0
            while offset < size:
                run, header = header_run(buffer, offset, size)
                if header is None:
                    raise DecodeError(f"malformed netlink message at offset {offset} of a {size}-byte sock_diag datagram")
                length, msg_type, flags = header[0], header[1], header[2]
                if msg_type == NLMSG_ERROR or msg_type == NLMSG_DONE:
                    if length >= NLMSG_HDRLEN + 4 and _S32.unpack_from(buffer, offset + NLMSG_HDRLEN)[0] < 0:
                        _raise_error(buffer, offset, length)
                    if msg_type == NLMSG_DONE:
                        yield offset
                        if interrupted:
                            raise DumpInterruptedError("the socket table changed during the dump (NLM_F_DUMP_INTR): dump again")
                        return
                if flags & NLM_F_DUMP_INTR:
                    interrupted = True
                offset += run * ((length + 3) & ~3)
            yield size
    finally:
        view.release()


def socket_chunks(
    *, tcp: bool = False, udp: bool = False, unix: bool = False, family: int | None = None,
    states: int | str | Iterable[str] | None = None, netns: NetnsSpec = None,
) -> Iterator[list[Any]]:  # fmt: skip
    """What ``ss -tanux`` lists (no flag = TCP, like ss), a list per
    datagram: unix first, then UDP, then TCP, as
    :meth:`.client.SockDiagClient.socket_chunks` yields them."""
    if not (tcp or udp or unix):
        tcp = True
    families = _families(family)
    mask = codec.state_mask(states)
    counts = codec.DecodeCounts()
    sock = _open(netns)
    try:
        buffer = bytearray(_BUFFER_SIZE)
        if unix and family is None:
            for end in dump_chunks(sock, _unix_request(mask), buffer):
                yield _unix_sockets(buffer, end, counts)
        for wanted, protocol in ((udp, c.IPPROTO_UDP), (tcp, c.IPPROTO_TCP)):
            if not wanted:
                continue
            text = codec.AddressText()
            for af in families:
                for end in dump_chunks(sock, codec.inet_request(af, protocol, mask), buffer):
                    yield codec.decode_inet_chunk(buffer, end, protocol, counts, text)
    finally:
        sock.close()


def json_chunks(
    *, tcp: bool = False, udp: bool = False, unix: bool = False, family: int | None = None,
    states: int | str | Iterable[str] | None = None, netns: NetnsSpec = None,
) -> Iterator[bytes]:  # fmt: skip
    """:func:`socket_chunks`'s sockets, in its order, as ``aionlmmap dump
    sockets --json`` prints them: the sockets' compact JSON texts (keys in
    docs/sock_diag.md) joined by commas, UTF-8, a piece per datagram
    (empty ones included). TCP and UDP are written by
    :func:`.codec.inet_chunk_json`, straight from the kernel's messages.

    TCP of both families is one TCPDIAG_GETSOCK dump
    (:func:`.codec.tcp_request_every_family`): one walk of the socket
    tables where a request per family walks them twice. Its IPv4 sockets
    are printed as they come and its IPv6 ones held until the dump ends,
    so the order stays ss's (and socket_chunks'): IPv4, then IPv6. A
    kernel that refuses it (``c.TCPDIAG_REFUSALS``) gets a dump per family."""
    if not (tcp or udp or unix):
        tcp = True
    families = _families(family)
    mask = codec.state_mask(states)
    counts = codec.DecodeCounts()
    sock = _open(netns)
    try:
        buffer = bytearray(_BUFFER_SIZE)
        if unix and family is None:
            for end in dump_chunks(sock, _unix_request(mask), buffer):
                yield _unix_json(buffer, end, counts)
        for wanted, protocol in ((udp, c.IPPROTO_UDP), (tcp, c.IPPROTO_TCP)):
            if not wanted:
                continue
            text = codec.AddressText()
            if protocol == c.IPPROTO_TCP and len(families) == 2:
                later: list[bytes] = []
                answered = False
                try:
                    for end in dump_chunks(sock, codec.tcp_request_every_family(mask), buffer):
                        v4_json, v6_json = codec.inet_chunk_json(buffer, end, protocol, counts, text)
                        answered = answered or bool(v4_json or v6_json)
                        later.append(v6_json)
                        yield v4_json
                except NetlinkError as error:
                    # Refused before its first socket: nothing was printed,
                    # and the per-family dumps below list the same sockets.
                    if answered or error.errno not in c.TCPDIAG_REFUSALS:
                        raise
                else:
                    yield from later
                    continue
            for af in families:
                for end in dump_chunks(sock, codec.inet_request(af, protocol, mask), buffer):
                    yield b"".join(codec.inet_chunk_json(buffer, end, protocol, counts, text))  # one of the two is empty
    finally:
        sock.close()


def _families(family: int | None) -> tuple[int, ...]:
    families = _FAMILIES.get(family)
    if families is None:
        raise ValueError(f"family {family!r}: use 4, 6 or None")
    return families


def _open(netns: NetnsSpec) -> _socket.socket:
    """A blocking NETLINK_SOCK_DIAG socket (in ``netns`` when given) with
    extended acks where the kernel has them.

    In the caller's own namespace the socket is made by ``_socket``, the C
    module under :mod:`socket`: importing socket.py turns every AF_, SOCK_
    and MSG_ constant into an IntEnum member, which cost this command ~10%
    of its start-up. Another namespace takes :func:`aionlmmap._sys.open_socket`
    (a thread that enters it)."""
    if netns is None:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    else:
        from ... import _sys

        sock = _sys.open_socket(NETLINK_SOCK_DIAG, netns)
    try:
        sock.setblocking(True)
        # as _sys.set_flag_option: a kernel without the option still dumps
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    except OSError as exc:
        if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
            sock.close()
            raise
    return sock


def _unix_request(mask: int) -> Message:
    return codec.unix_request(mask, c.UDIAG_SHOW_NAME | c.UDIAG_SHOW_PEER | c.UDIAG_SHOW_RQLEN | c.UDIAG_SHOW_UID)


def _unix_json(buffer: bytearray, end: int, counts: codec.DecodeCounts) -> bytes:
    import json  # unix dumps only: the inet texts are written without it

    compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    return ",".join([compact(sock.to_json()) for sock in _unix_sockets(buffer, end, counts)]).encode()


def _unix_sockets(buffer: bytearray, end: int, counts: codec.DecodeCounts) -> list[Any]:
    out = []
    offset = 0
    while offset < end:
        run, header = header_run(buffer, offset, end)
        if header is None:
            counts.malformed += 1
            break
        length, msg_type = header[0], header[1]
        step = (length + 3) & ~3
        if msg_type == c.SOCK_DIAG_BY_FAMILY:
            for start in range(offset + NLMSG_HDRLEN, offset + run * step, step):
                try:
                    out.append(codec.decode_unix(buffer, start, start + length - NLMSG_HDRLEN, counts))
                except DecodeError:
                    counts.malformed += 1
        offset += run * step
    return out

