"""A tiny rtnetlink for the simulated kernel: network links.

Enough to run the same behavioural tests against the simulated kernel as
against the real one: RTM_GETLINK (dump and get), RTM_NEWLINK (create,
EEXIST with NLM_F_EXCL), RTM_DELLINK (ENODEV), and RTNLGRP_LINK
notifications for every change. Messages look like the kernel's: an
ifinfomsg, IFLA_IFNAME, IFLA_MTU, IFLA_ADDRESS and an IFLA_STATS64 block,
about the size a real link message has, so dump chunks hold a few each.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

import attrs

from ..attributes import AttributeBuilder, Attributes
from ..constants import (
    NETLINK_ROUTE,
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTNLGRP_LINK,
)
from ..message import encode_message

if TYPE_CHECKING:
    from ._kernel import Request, SimulatedKernel

__all__ = ["Link", "RtnlModel"]

#: struct ifinfomsg {u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change}
IFINFOMSG = struct.Struct("=BxHiII")
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_STATS64 = 23
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
_STATS64_SIZE = 200  # struct rtnl_link_stats64 (25 u64 on 4.4)


@attrs.define
class Link:
    index: int
    name: str
    mtu: int = 1500
    flags: int = 0
    link_type: int = ARPHRD_ETHER

    def payload(self) -> bytes:
        address = bytes([0x02, 0, 0, 0, (self.index >> 8) & 0xFF, self.index & 0xFF])
        attributes = (
            AttributeBuilder()
            .add_str(IFLA_IFNAME, self.name)
            .add_u32(IFLA_MTU, self.mtu)
            .add(IFLA_ADDRESS, address)
            .add(IFLA_STATS64, bytes(_STATS64_SIZE))
        )
        return IFINFOMSG.pack(0, self.link_type, self.index, self.flags, 0) + attributes.build()


class RtnlModel:
    """The simulated kernel's links; ``kernel.rtnl``.

    ``add_link``/``remove_link`` change state from outside (like ``ip link``
    run by someone else) and notify RTNLGRP_LINK members. Set
    ``interrupt_dumps`` to a count to flag that many dumps NLM_F_DUMP_INTR.
    """

    def __init__(self, kernel: SimulatedKernel) -> None:
        self.kernel = kernel
        self.links: dict[int, Link] = {1: Link(1, "lo", 65536, IFF_UP | IFF_LOOPBACK | IFF_RUNNING, ARPHRD_LOOPBACK)}
        self._next_index = 2
        self.interrupt_dumps = 0
        kernel.register(NETLINK_ROUTE, RTM_GETLINK, self._get_link)
        kernel.register(NETLINK_ROUTE, RTM_NEWLINK, self._new_link)
        kernel.register(NETLINK_ROUTE, RTM_DELLINK, self._del_link)

    # -- state changes from outside ----------------------------------------------------------
    def add_link(self, name: str, mtu: int = 1500, *, seq: int = 0, portid: int = 0) -> Link:
        if self.find(name) is not None:
            raise ValueError(f"link {name!r} exists")
        link = Link(self._next_index, name, mtu)
        self._next_index += 1
        self.links[link.index] = link
        self._notify(RTM_NEWLINK, link, seq, portid)
        return link

    def remove_link(self, name: str, *, seq: int = 0, portid: int = 0) -> None:
        link = self.find(name)
        if link is None:
            raise ValueError(f"no link {name!r}")
        del self.links[link.index]
        self._notify(RTM_DELLINK, link, seq, portid)

    def find(self, name: str) -> Link | None:
        for link in self.links.values():
            if link.name == name:
                return link
        return None

    def _notify(self, msg_type: int, link: Link, seq: int, portid: int) -> None:
        # rtnl_notify(): notifications carry the causing request's seq and
        # portid; multicast always takes the COPY path (e.1).
        data = encode_message(msg_type, 0, seq, portid, link.payload())
        self.kernel.multicast(NETLINK_ROUTE, RTNLGRP_LINK, data)

    # -- handlers ------------------------------------------------------------------------------
    def _lookup(self, request: Request) -> Link | None:
        payload = bytes(request.message.payload)
        from ._kernel import KernelError

        if len(payload) < IFINFOMSG.size:
            raise KernelError(errno.EINVAL, "Invalid header for link request", 16)
        index = IFINFOMSG.unpack_from(payload)[2]
        name = Attributes(payload, IFINFOMSG.size).get_str(IFLA_IFNAME)
        if index:
            return self.links.get(index)
        if name is not None:
            return self.find(name)
        return None

    def _get_link(self, request: Request) -> None:
        from ._kernel import KernelError

        if request.is_dump:
            interrupted = self.interrupt_dumps > 0
            if interrupted:
                self.interrupt_dumps -= 1
            request.dump([(RTM_NEWLINK, link.payload()) for link in sorted(self.links.values(), key=lambda l: l.index)], interrupted=interrupted)
            return
        link = self._lookup(request)
        if link is None:
            raise KernelError(errno.ENODEV)
        request.reply(RTM_NEWLINK, link.payload())  # a non-dump rtnl reply: COPY path (c.3.8)

    def _new_link(self, request: Request) -> None:
        from ._kernel import KernelError

        payload = bytes(request.message.payload)
        existing = self._lookup(request)
        flags = request.message.flags
        if existing is not None:
            if flags & NLM_F_EXCL:
                raise KernelError(errno.EEXIST)
            return
        name = Attributes(payload, IFINFOMSG.size).get_str(IFLA_IFNAME)
        if name is None or not flags & NLM_F_CREATE:
            raise KernelError(errno.ENODEV if name else errno.EINVAL, None if name else "IFLA_IFNAME is required")
        self.add_link(name, seq=request.message.seq, portid=request.sock.portid)

    def _del_link(self, request: Request) -> None:
        from ._kernel import KernelError

        link = self._lookup(request)
        if link is None:
            raise KernelError(errno.ENODEV)
        self.remove_link(link.name, seq=request.message.seq, portid=request.sock.portid)
