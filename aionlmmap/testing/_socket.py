"""One simulated netlink socket: its rings, receive queue, error state and
the system calls the kernel backend makes on it.

Each rule cites the pre-4.6 ``net/netlink/af_netlink.c`` function it
mirrors and the DESIGN.md section 1 fact (probed on Linux 4.4.1).
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..constants import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
    NETLINK_NO_ENOBUFS,
    NETLINK_PKTINFO,
    NETLINK_RX_RING,
    NETLINK_TX_RING,
    NL_MMAP_HDRLEN,
    NL_MMAP_REQ_LEN,
    SOL_NETLINK,
)
from ..frames import COPY, NL_MMAP_HDR, NL_MMAP_REQ, SKIP, UNUSED, VALID, FrameRing, RingConfig

if TYPE_CHECKING:
    from ._kernel import SimulatedKernel

__all__ = ["Queued", "SimulatedSocket", "SimulatedSyscalls"]

_U32 = struct.Struct("=I")
_INT = struct.Struct("=i")
#: what one queued skb costs against SO_RCVBUF beyond its bytes (skb + shared info)
SKB_OVERHEAD = 576


@attrs.frozen
class Queued:
    """A datagram on the socket's receive queue (the COPY path)."""

    data: bytes
    group: int = 0
    pid: int = 0

    @property
    def truesize(self) -> int:
        return len(self.data) + SKB_OVERHEAD


class _RingState:
    """One ring the kernel allocated (pg_vec) and its kernel-side head."""

    def __init__(self, config: RingConfig) -> None:
        self.config = config
        self.storage: Any = bytearray(config.ring_size)  # a fresh ring is all zero
        self.frames: FrameRing | None = None  # set when the socket is mapped
        self.base = 0


class SimulatedSocket:
    """A netlink socket of a :class:`SimulatedKernel`.

    It quacks like the ``socket.socket`` the Ring uses (``fileno``,
    ``getsockname``, ``setsockopt``, ``getsockopt``, ``close``) and carries
    ``ring_syscalls``, which :class:`~aionlmmap.backends.kernel.KernelBackend`
    picks up instead of Linux. ``fileno()`` is an eventfd the simulated
    kernel keeps readable exactly while ``poll()`` would report POLLIN or
    POLLERR, so an event loop can wait on it like on a real socket.
    """

    def __init__(self, kernel: SimulatedKernel, protocol: int) -> None:
        self.kernel = kernel
        self.protocol = protocol
        self.portid = 0
        self.groups: set[int] = set()
        self.ext_ack = False
        self.cap_ack = False
        self.no_enobufs = False
        self.strict_check = False
        self.pktinfo = False
        self.rcvbuf = kernel.default_rcvbuf
        self.sndbuf = kernel.default_rcvbuf
        self.rmem = 0
        self.queue: deque[Queued] = deque()
        self.sk_err = 0
        self.congested = False
        #: messages the kernel dropped for this socket (/proc/net/netlink "Drops")
        self.drops = 0
        self.rx_ring: _RingState | None = None
        self.tx_ring: _RingState | None = None
        self.mappings = 0
        self._memory: mmap.mmap | None = None
        #: the running dump (netlink_sock.cb_running)
        self.dump: Any = None
        #: netlink_sock.max_recvmsg_len
        self.max_recvmsg_len = 0
        self.closed = False
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._signalled = False
        #: injected failures: syscall name -> errnos to raise, in order
        self.faults: dict[str, deque[int]] = {}
        self.ring_syscalls = SimulatedSyscalls(self)

    # -- the socket.socket surface the Ring and _sys use ------------------------------
    def fileno(self) -> int:
        return self._event_fd

    def bind(self, address: tuple[int, int] = (0, 0)) -> None:
        if not self.portid:
            self.portid = self.kernel._assign_portid(self, address[0])

    def getsockname(self) -> tuple[int, int]:
        mask = 0
        for group in self.groups:
            if 0 < group <= 32:
                mask |= 1 << (group - 1)
        return self.portid, mask

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._check_open()
        if level == socket.SOL_SOCKET and option in (socket.SO_RCVBUF, 33):
            # The kernel doubles the value (sock_setsockopt) for bookkeeping.
            self.rcvbuf = max(2 * int(value), 2304)  # type: ignore[arg-type]
            return
        if level == socket.SOL_SOCKET and option in (socket.SO_SNDBUF, 32):
            self.sndbuf = max(2 * int(value), 4608)  # type: ignore[arg-type]
            return
        if level == socket.SOL_SOCKET:
            return  # SO_PASSCRED and friends: accepted, nothing to simulate
        if level != SOL_NETLINK:
            raise OSError(errno.ENOPROTOOPT, "simulated socket: unknown option level")
        if option in (NETLINK_RX_RING, NETLINK_TX_RING):
            self.ring_syscalls.set_ring(option, bytes(value))  # type: ignore[arg-type]
            return
        flag = bool(value)
        if option == NETLINK_ADD_MEMBERSHIP:
            self.groups.add(int(value))  # type: ignore[arg-type]
        elif option == NETLINK_DROP_MEMBERSHIP:
            self.groups.discard(int(value))  # type: ignore[arg-type]
        elif option == NETLINK_EXT_ACK:
            if not self.kernel.ext_ack_supported:
                raise OSError(errno.ENOPROTOOPT, "NETLINK_EXT_ACK is not supported (Linux < 4.12)")
            self.ext_ack = flag
        elif option == NETLINK_CAP_ACK:
            self.cap_ack = flag
        elif option == NETLINK_NO_ENOBUFS:
            self.no_enobufs = flag
            if flag:
                self.sk_err = 0
                self.congested = False
        elif option == NETLINK_GET_STRICT_CHK:
            if not self.kernel.ext_ack_supported:
                raise OSError(errno.ENOPROTOOPT, "NETLINK_GET_STRICT_CHK is not supported (Linux < 4.20)")
            self.strict_check = flag
        elif option == NETLINK_PKTINFO:
            self.pktinfo = flag
        else:
            raise OSError(errno.ENOPROTOOPT, f"simulated socket: option {option} is not simulated")

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> int:
        if level == socket.SOL_SOCKET and option == socket.SO_ERROR:
            return self.ring_syscalls.take_error()
        if level == socket.SOL_SOCKET and option == socket.SO_RCVBUF:
            return self.rcvbuf
        if level == socket.SOL_SOCKET and option == socket.SO_SNDBUF:
            return self.sndbuf
        # getsockopt(NETLINK_RX_RING) is not implemented by the kernel either.
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.dump = None
        self.kernel._forget(self)
        os.close(self._event_fd)
        self._event_fd = -1

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "simulated socket is closed")

    # -- ring addressing (kernel side) -------------------------------------------------
    @property
    def rx(self) -> FrameRing | None:
        """The RX ring as the kernel sees it (``head`` = where it writes next),
        once the socket is mapped."""
        return self.rx_ring.frames if self.rx_ring else None

    @property
    def tx(self) -> FrameRing | None:
        return self.tx_ring.frames if self.tx_ring else None

    def _ring_frames(self, ring: _RingState) -> FrameRing:
        if ring.frames is None:
            # Not mapped yet: the kernel still uses the ring (rings work
            # before mmap; nobody can see them).
            ring.frames = FrameRing(ring.storage, ring.config, 0, self.kernel.page_size)
        return ring.frames

    def rx_statuses(self) -> str:
        """The RX frames' statuses as letters (U/R/V/C/S), like the probe notes."""
        return self._ring_frames(self.rx_ring).statuses() if self.rx_ring else ""

    def tx_statuses(self) -> str:
        return self._ring_frames(self.tx_ring).statuses() if self.tx_ring else ""

    # -- readiness -----------------------------------------------------------------------
    def has_valid_frame(self) -> bool:
        """netlink_has_valid_frame(): any RX frame VALID, wherever it is."""
        ring = self.rx_ring
        if ring is None:
            return False
        frames = self._ring_frames(ring)
        return any(frames.status(i) == VALID for i in range(frames.frame_nr))

    def poll_mask(self) -> int:
        mask = select.POLLOUT  # writable, even with every TX frame VALID (d.10.1)
        if self.queue or self.has_valid_frame():
            mask |= select.POLLIN
        if self.sk_err:
            mask |= select.POLLERR
        return mask

    def update_readiness(self) -> None:
        """Make the eventfd readable iff poll() would report POLLIN/POLLERR.

        Like an epoll entry, it is only re-evaluated when the kernel does
        something (a syscall, a delivery): user-space writes to frame memory
        (releases) do not wake anyone, exactly as on the real kernel."""
        if self.closed:
            return
        ready = bool(self.poll_mask() & (select.POLLIN | select.POLLERR))
        if ready and not self._signalled:
            os.eventfd_write(self._event_fd, 1)
            self._signalled = True
        elif not ready and self._signalled:
            try:
                os.eventfd_read(self._event_fd)
            except BlockingIOError:
                pass
            self._signalled = False

    # -- error state (netlink_overrun, netlink_rcv_wake) ---------------------------------
    def overrun(self) -> None:
        """netlink_overrun(): report ENOBUFS once per congestion episode and
        count the drop; NETLINK_NO_ENOBUFS only counts."""
        if not self.no_enobufs and not self.congested:
            self.congested = True
            self.sk_err = errno.ENOBUFS
        self.drops += 1

    def rcv_wake(self) -> None:
        """netlink_rcv_wake(): congestion ends once the queue is empty."""
        if not self.queue:
            self.congested = False

    # -- mapping -------------------------------------------------------------------------
    def expected_map_size(self) -> int:
        return sum(ring.config.ring_size for ring in (self.rx_ring, self.tx_ring) if ring is not None)

    def map(self) -> memoryview:
        """Share both rings in one buffer, RX first (netlink_mmap)."""
        if self._memory is None:
            size = self.expected_map_size()
            memory = mmap.mmap(-1, size)
            base = 0
            for ring in (self.rx_ring, self.tx_ring):
                if ring is None:
                    continue
                memory[base : base + ring.config.ring_size] = bytes(ring.storage)
                ring.storage = memory
                ring.base = base
                ring.frames = _rebased(ring.frames, memory, ring.config, base, self.kernel.page_size)
                base += ring.config.ring_size
            self._memory = memory
        self.mappings += 1
        return memoryview(self._memory)

    def unmap(self) -> None:
        if self.mappings <= 0:
            raise OSError(errno.EINVAL, "munmap of a mapping that does not exist")
        self.mappings -= 1

    def _unshare(self) -> None:
        # No mapping left and a ring is about to change: give each ring its
        # own storage again (the kernel's pg_vecs were always separate).
        if self._memory is None:
            return
        for ring in (self.rx_ring, self.tx_ring):
            if ring is None:
                continue
            storage = bytearray(self._memory[ring.base : ring.base + ring.config.ring_size])
            head = ring.frames.head if ring.frames else 0
            ring.storage = storage
            ring.base = 0
            ring.frames = FrameRing(storage, ring.config, 0, self.kernel.page_size)
            ring.frames.head = head
        self._memory = None


def _rebased(old: FrameRing | None, buffer: Any, config: RingConfig, base: int, page_size: int) -> FrameRing:
    frames = FrameRing(buffer, config, base, page_size)
    if old is not None:
        frames.head = old.head
    return frames


class SimulatedSyscalls:
    """The :class:`~aionlmmap.backends.kernel.RingSyscalls` of one simulated socket."""

    def __init__(self, sock: SimulatedSocket) -> None:
        self._sock = sock
        self.kernel_release = sock.kernel.release
        self.page_size = sock.kernel.page_size

    def _fault(self, call: str) -> None:
        queue = self._sock.faults.get(call)
        if queue:
            code = queue.popleft()
            raise OSError(code, f"{os.strerror(code)} (injected into {call})") if code != errno.EINTR else InterruptedError(
                errno.EINTR, f"Interrupted system call (injected into {call})"
            )

    def _finish(self) -> None:
        self._sock.update_readiness()

    # setsockopt(SOL_NETLINK, NETLINK_{RX,TX}_RING): netlink_setsockopt + netlink_set_ring
    def set_ring(self, option: int, request: bytes) -> None:
        sock = self._sock
        kernel = sock.kernel
        sock._check_open()
        self._fault("set_ring")
        if not kernel.has_ring:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        if option not in (NETLINK_RX_RING, NETLINK_TX_RING):
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        if not kernel.cap_net_admin:
            raise OSError(errno.EPERM, "Operation not permitted (rings need CAP_NET_ADMIN in the initial user namespace)")
        if len(request) < NL_MMAP_REQ_LEN:
            raise OSError(errno.EINVAL, f"optlen {len(request)} < sizeof(struct nl_mmap_req)")
        block_size, block_nr, frame_size, frame_nr = NL_MMAP_REQ.unpack_from(request)
        attribute = "rx_ring" if option == NETLINK_RX_RING else "tx_ring"
        ring: _RingState | None = getattr(sock, attribute)
        if sock.mappings:
            raise OSError(errno.EBUSY, "Device or resource busy (the socket's rings are mapped)")
        if block_nr:
            if ring is not None:
                raise OSError(errno.EBUSY, "Device or resource busy (this ring is already set)")
            if block_size == 0 or block_size >= 2**31:
                raise OSError(errno.EINVAL, "(int)block_size <= 0")
            if block_size % kernel.page_size:
                raise OSError(errno.EINVAL, "block_size is not page aligned")
            if frame_size < NL_MMAP_HDRLEN:
                raise OSError(errno.EINVAL, "frame_size < NL_MMAP_HDRLEN")
            if frame_size % 4:
                raise OSError(errno.EINVAL, "frame_size is not NL_MMAP_MSG_ALIGNMENT aligned")
            per_block = block_size // frame_size
            if per_block == 0:
                raise OSError(errno.EINVAL, "frame_size > block_size")
            if per_block * block_nr != frame_nr:
                raise OSError(errno.EINVAL, "frame_nr != frames_per_block * block_nr")
            sock._unshare()
            setattr(sock, attribute, _RingState(RingConfig(block_size, block_nr, frame_size, frame_nr)))
        else:
            if frame_nr:
                raise OSError(errno.EINVAL, "block_nr 0 with frame_nr != 0")
            sock._unshare()
            setattr(sock, attribute, None)  # teardown; of an unset ring: 0 too
        self._finish()

    # mmap(NULL, length, prot, flags, fd, offset): netlink_mmap
    def map_rings(self, length: int, *, offset: int = 0, shared: bool = True, writable: bool = True) -> tuple[Any, Callable[[], None]]:
        sock = self._sock
        sock._check_open()
        self._fault("mmap")
        page = self.page_size
        expected = sock.expected_map_size()
        rounded = -(-length // page) * page
        if offset or expected == 0 or rounded != expected:
            raise OSError(errno.EINVAL, f"mmap of {length} bytes at offset {offset}: the rings need exactly {expected} at 0")
        view = sock.map()
        if not shared:
            # MAP_PRIVATE: the first write copies the page, and from then on
            # neither side sees the other (b.3). A snapshot models that.
            view = memoryview(bytearray(view))
        if not writable:
            view = view.toreadonly()
        done = False

        def unmap() -> None:
            nonlocal done
            if not done:
                done = True
                view.release()
                sock.unmap()

        return view, unmap

    # sendto(fd, NULL, 0, 0, NULL, 0): netlink_mmap_sendmsg
    def send_frames(self) -> int:
        sock = self._sock
        sock._check_open()
        self._fault("send_frames")
        try:
            return sock.kernel._consume_tx(sock)
        finally:
            self._finish()

    # recvmsg(fd, size): netlink_recvmsg
    def receive(self, size: int) -> tuple[bytes, int]:
        sock = self._sock
        sock._check_open()
        try:
            self._fault("receive")
            if sock.sk_err:
                code, sock.sk_err = sock.sk_err, 0  # sock_error() reports it once
                raise OSError(code, os.strerror(code))
            if not sock.queue:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            queued = sock.queue.popleft()
            sock.rmem -= queued.truesize
            sock.max_recvmsg_len = min(max(sock.max_recvmsg_len, size), 16384)
            data = queued.data
            flags = 0
            if len(data) > size:
                data = data[:size]
                flags |= socket.MSG_TRUNC  # the rest is dropped (c.4)
            if sock.dump is not None and sock.rmem <= sock.rcvbuf // 2:
                sock.kernel._dump_step(sock)
            sock.rcv_wake()
            return data, flags
        finally:
            self._finish()

    # poll(): netlink_poll (dump flow control) + datagram_poll
    def poll(self) -> int:
        sock = self._sock
        sock._check_open()
        try:
            self._fault("poll")
            kernel = sock.kernel
            for _ in range(1 + (sock.rx_ring.config.frame_nr if sock.rx_ring else 0)):
                if sock.dump is None or not kernel._dump_space(sock):
                    break
                if kernel._dump_step(sock) < 0:
                    break
            sock.rcv_wake()
            return sock.poll_mask()
        finally:
            self._finish()

    # getsockopt(SO_ERROR)
    def take_error(self) -> int:
        sock = self._sock
        self._fault("take_error")
        code, sock.sk_err = sock.sk_err, 0
        self._finish()
        return code

    # getsockopt(NETLINK_LIST_MEMBERSHIPS)
    def subscribed(self) -> bool:
        self._sock._check_open()
        return bool(self._sock.groups)


# Re-exported for tests that write frames by hand.
FRAME_HEADER = NL_MMAP_HDR
STATUSES = {"UNUSED": UNUSED, "VALID": VALID, "COPY": COPY, "SKIP": SKIP}
