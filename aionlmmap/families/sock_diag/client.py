"""The sock_diag client over one NETLINK_SOCK_DIAG ring."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ... import open as _open_ring
from ...constants import NETLINK_SOCK_DIAG
from ...errors import DecodeError, NetlinkError
from ...ring import Ring
from . import codec
from . import constants as c
from .codec import DecodeCounts, state_mask
from .objects import InetSocket
from .unix_socket import UnixSocket

if TYPE_CHECKING:
    from ...message import Message
    from .bytecode import Condition

__all__ = ["open", "SockDiagClient", "state_mask"]

_PROTOCOLS = {"tcp": c.IPPROTO_TCP, "udp": c.IPPROTO_UDP, c.IPPROTO_TCP: c.IPPROTO_TCP, c.IPPROTO_UDP: c.IPPROTO_UDP}
_FAMILIES = {None: (c.AF_INET, c.AF_INET6), 0: (c.AF_INET, c.AF_INET6), 4: (c.AF_INET,), 6: (c.AF_INET6,), c.AF_INET: (c.AF_INET,), c.AF_INET6: (c.AF_INET6,)}


def open(netns: Any = None, **ring_options: Any) -> SockDiagClient:
    """A sock_diag client: ``async with sock_diag.open(netns="blue") as sd: ...``"""
    return SockDiagClient(_open_ring(NETLINK_SOCK_DIAG, netns=netns, **ring_options))


class SockDiagClient:
    """inet_diag and unix_diag dumps and SOCK_DESTROY (``sd.ring``);
    ``sd.counts`` counts unknown attributes and malformed messages."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.counts = DecodeCounts()

    async def __aenter__(self) -> SockDiagClient:
        await self.ring.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ring.aclose()

    async def aclose(self) -> None:
        await self.ring.aclose()

    async def inet(
        self,
        protocol: int | str = "tcp",
        family: int | None = None,
        *,
        states: int | str | Iterable[str] | None = None,
        filter: Condition | None = None,
        extensions: Iterable[str] = (),
    ) -> AsyncIterator[InetSocket]:
        """TCP or UDP sockets of IPv4 then IPv6 (or ``family`` 4/6), in
        ``states`` (ss's words or a mask; default all), accepted by the
        bytecode ``filter`` in the kernel, with ``extensions``: tcp_info,
        meminfo, skmeminfo, cong, tos, tclass, shutdown (mark and cgroup_id
        come without asking where the kernel sends them)."""
        number = _PROTOCOLS.get(protocol)
        if number is None:
            raise ValueError(f"protocol {protocol!r}: use 'tcp' or 'udp'")
        families = _FAMILIES.get(family)
        if families is None:
            raise ValueError(f"family {family!r}: use 4, 6 or None")
        async for chunk in self.inet_chunks(protocol, family, states=states, filter=filter, extensions=extensions):
            for sock in chunk:
                yield sock

    async def inet_chunks(
        self,
        protocol: int | str = "tcp",
        family: int | None = None,
        *,
        states: int | str | Iterable[str] | None = None,
        filter: Condition | None = None,
        extensions: Iterable[str] = (),
    ) -> AsyncIterator[list[InetSocket]]:
        """:meth:`inet` a dump chunk at a time (one list per datagram): one
        generator step per chunk instead of per socket, for bulk consumers."""
        number = _PROTOCOLS.get(protocol)
        if number is None:
            raise ValueError(f"protocol {protocol!r}: use 'tcp' or 'udp'")
        families = _FAMILIES.get(family)
        if families is None:
            raise ValueError(f"family {family!r}: use 4, 6 or None")
        mask = state_mask(states)
        wanted = list(extensions)
        bits = codec.extension_bits(wanted)
        bytecode = filter.compile() if filter is not None else None
        counts = self.counts
        text = codec.AddressText()
        if number == c.IPPROTO_TCP and len(families) == 2 and not wanted:
            # Both families in one walk of the kernel's tables (see
            # codec.tcp_request_every_family); the IPv6 sockets are held
            # back so that the order stays IPv4, then IPv6.
            held = []
            answered = False
            try:
                async for socks in self._fast_chunks(codec.tcp_request_every_family(mask, bytecode), number, text):
                    answered = answered or bool(socks)
                    v6 = [sock for sock in socks if sock[0] == c.AF_INET6]
                    if v6:
                        held.append(v6)
                        socks = [sock for sock in socks if sock[0] != c.AF_INET6]
                    yield socks
            except NetlinkError as error:
                # Refused before its first socket (c.TCPDIAG_REFUSALS): the
                # per-family dumps below list the same sockets.
                if answered or error.errno not in c.TCPDIAG_REFUSALS:
                    raise
            else:
                for socks in held:
                    yield socks
                return
        for af in families:
            request = codec.inet_request(af, number, mask, bits, bytecode)
            if not wanted:
                async for socks in self._fast_chunks(request, number, text):
                    yield socks
                continue
            batch = []
            async for msg in self.ring.dump(request):
                if msg[0] != c.SOCK_DIAG_BY_FAMILY:
                    continue
                try:
                    batch.append(codec.decode_inet(msg[6].buffer, msg[4], msg[5], number, counts, True, text))
                except DecodeError:
                    counts.malformed += 1
                if len(batch) >= 256:
                    yield batch
                    batch = []
            if batch:
                yield batch

    async def _fast_chunks(self, request: Message, number: int, text: codec.AddressText) -> AsyncIterator[list[InetSocket]]:
        """The fast path: each dump chunk walked in one call, leaving the
        attributes the kernel always adds (shutdown, mark, cgroup id,
        sockopt) undecoded."""
        counts = self.counts
        async for frame, chunk in self.ring.dump_chunks(request):
            if chunk.__class__ is int:
                yield codec.decode_inet_chunk(frame.buffer, chunk, number, counts, text)
                continue
            slow = []
            for msg in chunk:
                if msg[0] == c.SOCK_DIAG_BY_FAMILY or msg[0] == c.TCPDIAG_GETSOCK:
                    try:
                        slow.append(codec.decode_inet(msg[6].buffer, msg[4], msg[5], number, counts, False, text))
                    except DecodeError:
                        counts.malformed += 1
            yield slow

    async def unix(self, *, states: int | str | Iterable[str] | None = None, show: int = c.UDIAG_SHOW_NAME | c.UDIAG_SHOW_PEER | c.UDIAG_SHOW_RQLEN | c.UDIAG_SHOW_UID) -> AsyncIterator[UnixSocket]:
        """Unix sockets (``ss -x``): name, peer, queues, uid; ``show`` adds
        UDIAG_SHOW_ICONS (pending connections), _MEMINFO, _VFS."""
        counts = self.counts
        async for msg in self.ring.dump(codec.unix_request(state_mask(states), show)):
            if msg[0] != c.SOCK_DIAG_BY_FAMILY:
                continue
            try:
                yield codec.decode_unix(msg[6].buffer, msg[4], msg[5], counts)
            except DecodeError:
                counts.malformed += 1

    async def sockets(
        self, *, tcp: bool = False, udp: bool = False, unix: bool = False, family: int | None = None, states: int | str | Iterable[str] | None = None,
    ) -> AsyncIterator[InetSocket | UnixSocket]:  # fmt: skip
        """What ``ss -tanux`` lists (no flag = TCP, like ss): unix first,
        then UDP, then TCP, as ss prints them."""
        if not (tcp or udp or unix):
            tcp = True
        if unix and family is None:
            async for sock in self.unix(states=states):
                yield sock
        if udp:
            async for inet in self.inet("udp", family, states=states):
                yield inet
        if tcp:
            async for inet in self.inet("tcp", family, states=states):
                yield inet

    async def socket_chunks(
        self, *, tcp: bool = False, udp: bool = False, unix: bool = False, family: int | None = None, states: int | str | Iterable[str] | None = None,
    ) -> AsyncIterator[list[InetSocket] | list[UnixSocket]]:  # fmt: skip
        """:meth:`sockets` in lists (a dump chunk each for TCP and UDP)."""
        if not (tcp or udp or unix):
            tcp = True
        if unix and family is None:
            yield [sock async for sock in self.unix(states=states)]
        if udp:
            async for chunk in self.inet_chunks("udp", family, states=states):
                yield chunk
        if tcp:
            async for chunk in self.inet_chunks("tcp", family, states=states):
                yield chunk

    async def destroy(self, sock: InetSocket) -> None:
        """Close a TCP or UDP socket from outside (``ss -K``): SOCK_DESTROY,
        which needs CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP without it) and
        CAP_NET_ADMIN. The socket's owner sees ECONNABORTED."""
        await self.ring.request(codec.destroy_request(sock))
