"""Notifications the kernel dropped without telling: the congestion window
after a netlink overrun.

On a full receive queue netlink_overrun() reports ENOBUFS only when it sets
NETLINK_S_CONGESTED; while the bit stays set (until a recvmsg finds the
queue empty, netlink_rcv_wake) every further broadcast is dropped
(netlink_broadcast_deliver) with no second report, only ``sk_drops``
counting it. A monitor that re-dumps after the ENOBUFS can therefore miss a
change made after the dump passed the object, before the queue drained.
:class:`DropWatch` reads ``sk_drops`` and ``sk_rmem_alloc`` through
``getsockopt(SO_MEMINFO)`` (SK_MEMINFO_RMEM_ALLOC and SK_MEMINFO_DROPS,
Linux >= 4.6) to tell when that happened (dump again) and when the window
closed (the queue was empty: drops are reported again from then on).
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["DropWatch"]

_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_SK_MEMINFO_VARS = 9  # enum sk_meminfo_vars up to SK_MEMINFO_DROPS (8)
_MEMINFO = struct.Struct(f"={_SK_MEMINFO_VARS}I")


class DropWatch:
    """``watch.arm()`` right after an overrun (before the re-dump); then
    ``watch.check()`` after the dump and after each message while
    ``watch.armed``: "lost" means notifications were dropped silently (dump
    again, then ``arm()`` again), "closed" that the congestion window ended,
    "open" that it may still drop."""

    __slots__ = ("_sock", "_drops", "armed", "available")

    def __init__(self, fd: int) -> None:
        # A dup of the ring's socket: the same kernel socket, our own fd.
        self._sock: socket.socket | None = socket.socket(fileno=os.dup(fd))
        self._drops = 0
        self.armed = False
        self.available = self._read() is not None

    def _read(self) -> tuple[int, int] | None:
        sock = self._sock
        if sock is None:
            return None
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
        except OSError:
            return None
        if len(raw) < _MEMINFO.size:
            return None
        values = _MEMINFO.unpack(raw)
        return values[0], values[8]  # SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_DROPS

    def arm(self) -> None:
        now = self._read()
        if now is None:
            return
        self._drops = now[1]
        self.armed = True

    def check(self) -> str:
        if not self.armed:
            return "closed"
        now = self._read()
        if now is None:
            self.armed = False
            return "closed"
        rmem, drops = now
        if drops != self._drops:
            return "lost"
        if rmem == 0:
            self.armed = False
            return "closed"
        return "open"

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
