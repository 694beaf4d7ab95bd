"""The kernel ring: ``NETLINK_RX_RING``/``NETLINK_TX_RING`` and one shared ``mmap``.

Linux before 4.6 (with CONFIG_NETLINK_MMAP) lets the kernel write received
messages straight into frames user space mapped, and take messages to send
straight out of TX frames. Every fact this backend relies on is in
DESIGN.md section 1 (checked on a real 4.4.1 kernel); the short version:

- Probe, never trust a version number: ``setsockopt(SOL_NETLINK,
  NETLINK_RX_RING)`` answers ENOPROTOOPT where the ring is gone (mainline
  4.6, and the stable branches that dropped it).
- Both rings map in one ``MAP_SHARED`` ``PROT_READ|PROT_WRITE`` mapping of
  exactly rx + tx bytes at offset 0, RX first.
- RX: a VALID frame is parsed in place (at the right data offset, see
  below), a VALID frame with nm_len 0 is released unread, a COPY frame means
  ``recvmsg`` the next datagram (exactly nm_len bytes) then release, RESERVED
  and UNUSED mean wait. Release writes UNUSED (the status word last).
- Dumps continue only inside ``poll()`` (``netlink_poll`` runs
  ``netlink_dump`` while the head frame and the one (frame_nr - 1) / 2
  ahead are UNUSED), so :meth:`KernelBackend.fill` polls on every wake.
- TX: frames are written VALID (status last) and one ``sendto(fd, NULL, 0)``
  per batch makes the kernel consume every consecutive VALID frame. Python's
  socket module cannot pass a NULL buffer (``send(b"")`` sends an empty
  datagram instead), hence ctypes.
- SKIP is safe only where every message takes the ring path (nfqueue,
  nflog): the kernel's COPY path does not step past a SKIP head and drops
  notifications with ENOBUFS. ``skip_is_safe`` is False unless asked for.

The syscalls go through a :class:`RingSyscalls` object so that
:mod:`aionlmmap.testing`'s simulated kernel can stand in for Linux; a socket
that carries a ``ring_syscalls`` attribute (a simulated socket) brings its
own.
"""

from __future__ import annotations

from collections import deque

import ctypes
import errno
import logging
import mmap
import select
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from .. import _sys
from ..constants import NETLINK_RX_RING, NETLINK_TX_RING, NL_MMAP_HDRLEN, NLMSG_HDRLEN, SOL_NETLINK
from ..errors import BackendUnavailableError, RingConfigError
from ..frames import UNUSED, VALID, FrameRing, RingConfig
from . import TxFailure

__all__ = ["KernelBackend", "LinuxSyscalls", "RingSyscalls", "nlmsg_goodsize"]

log = logging.getLogger("aionlmmap")

_U32 = struct.Struct("=I")
_NLMSG_LEN_TYPE = struct.Struct("=IH")
#: bounded retries of a syscall interrupted by a signal (EINTR)
_EINTR_RETRIES = 8
#: getsockopt(SOL_NETLINK, ...): the groups joined, as a bitmap (Linux >= 4.2)
_NETLINK_LIST_MEMBERSHIPS = 9
#: netlink_recvmsg caps the remembered buffer size (max_recvmsg_len) here on 4.4
_MAX_RECVMSG_LEN = 16384


def nlmsg_goodsize(page_size: int) -> int:
    """NLMSG_GOODSIZE: SKB_WITH_OVERHEAD(min(PAGE_SIZE, 8192)); 3776 with
    4 KiB pages on x86_64 (the 320 bytes are skb_shared_info)."""
    return min(page_size, 8192) - 320


class RingSyscalls(Protocol):
    """The system calls the kernel backend makes, one socket's worth.

    :class:`LinuxSyscalls` makes them for real; the simulated kernel in
    :mod:`aionlmmap.testing` implements the same methods over shared memory.
    Errors are raised as :class:`OSError` with the kernel's errno.
    """

    page_size: int
    kernel_release: str

    def set_ring(self, option: int, request: bytes) -> None:
        """setsockopt(SOL_NETLINK, NETLINK_RX_RING or NETLINK_TX_RING, nl_mmap_req)."""
        ...

    def map_rings(self, length: int) -> tuple[Any, Callable[[], None]]:
        """mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0): a
        writable buffer and the function that unmaps it."""
        ...

    def send_frames(self) -> int:
        """sendto(fd, NULL, 0, 0, NULL, 0): the kernel consumes VALID TX frames."""
        ...

    def receive(self, size: int) -> tuple[bytes, int]:
        """recvmsg with a ``size``-byte buffer: (data, msg_flags)."""
        ...

    def poll(self) -> int:
        """poll() with a zero timeout: the revents (POLLIN, POLLERR, ...)."""
        ...

    def take_error(self) -> int:
        """getsockopt(SO_ERROR): the pending socket error (cleared)."""
        ...

    def subscribed(self) -> bool:
        """getsockopt(NETLINK_LIST_MEMBERSHIPS): the socket is in some multicast group."""
        ...


class LinuxSyscalls:
    """:class:`RingSyscalls` against the running kernel."""

    page_size = mmap.PAGESIZE

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN | select.POLLERR)
        self.kernel_release = _sys.kernel_release()
        sendto = _sys.libc.sendto
        sendto.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32]
        sendto.restype = ctypes.c_ssize_t
        self._sendto = sendto

    def set_ring(self, option: int, request: bytes) -> None:
        self._sock.setsockopt(SOL_NETLINK, option, request)

    def map_rings(self, length: int) -> tuple[Any, Callable[[], None]]:
        # CPython's mmap dup()s the fd; mmap.close() closes that dup, so the
        # socket really goes away once the mapping is closed.
        memory = mmap.mmap(self._fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        return memory, memory.close

    def send_frames(self) -> int:
        result = self._sendto(self._fd, None, 0, 0, None, 0)
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"sendto(NULL) on the TX ring failed: {errno.errorcode.get(err, err)}")
        return int(result)

    def receive(self, size: int) -> tuple[bytes, int]:
        data, _ancillary, flags, _address = self._sock.recvmsg(size)
        return data, flags

    def poll(self) -> int:
        events = self._poller.poll(0)
        return events[0][1] if events else 0

    def take_error(self) -> int:
        return int(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def subscribed(self) -> bool:
        try:
            groups = self._sock.getsockopt(SOL_NETLINK, _NETLINK_LIST_MEMBERSHIPS, 32)
        except OSError:
            return True  # cannot tell (before Linux 4.2): assume notifications come
        return any(groups)


def _retry_eintr(call: Callable[..., Any], *args: Any) -> Any:
    for _ in range(_EINTR_RETRIES - 1):
        try:
            return call(*args)
        except InterruptedError:
            continue
    return call(*args)


class _KernelRxRing(FrameRing):
    """The RX ring as user space sees it, releasing with the nlmsghdr at
    the frame's +24 cleared first.

    Why: on kernels with the dump-trimming bug (4.4.1 is one) a dump chunk
    starts at frame_size - alloc_size and the bytes at +24 are whatever an
    earlier message left there. Clearing nlmsg_len at +24 before handing the
    frame back means a valid header at +24 is always this frame's own data,
    which is how :meth:`KernelBackend.frame_data` tells the layouts apart.
    """

    __slots__ = ()

    def release(self, index: int) -> None:
        offset = self.offsets[index]
        _U32.pack_into(self.buffer, offset + NL_MMAP_HDRLEN, 0)
        _U32.pack_into(self.buffer, offset, UNUSED)


class KernelBackend:
    """The kernel's own mmap ring (Linux < 4.6 with CONFIG_NETLINK_MMAP).

    ``aionlmmap.open(..., backend="kernel")`` builds one; ``"auto"`` tries it
    first. Raises :class:`BackendUnavailableError` where the kernel has no
    ring (ENOPROTOOPT) or refuses it (EPERM: CAP_NET_ADMIN in the initial
    user namespace is needed), and :class:`RingConfigError` for a geometry
    the kernel would reject, before any syscall.

    Args:
        sock: a bound AF_NETLINK socket (or a simulated one).
        rx_config, tx_config: ring geometry.
        syscalls: where the syscalls go (default: the socket's
            ``ring_syscalls`` if it has one, else Linux).
        skip_is_safe: True only for sockets whose traffic all takes the ring
            path (nfqueue, nflog); then held frames are marked SKIP instead
            of being copied out.
        detect_dump_offset: find dump chunks that the 4.4.1 trimming bug
            placed at frame_size - alloc_size (default); False reads every
            frame at +24.
    """

    name = "kernel"
    #: frame_data detects the 4.4.1 dump data offset, so the ring must ask it
    rx_views: list[memoryview] | None = None

    def __init__(
        self,
        sock: Any,
        rx_config: RingConfig,
        tx_config: RingConfig,
        *,
        syscalls: RingSyscalls | None = None,
        skip_is_safe: bool = False,
        detect_dump_offset: bool = True,
    ) -> None:
        if syscalls is None:
            syscalls = getattr(sock, "ring_syscalls", None) or LinuxSyscalls(sock)
        self._sys = syscalls
        page_size = syscalls.page_size
        rx_config.validate(page_size)
        tx_config.validate(page_size)
        if rx_config.is_teardown or tx_config.is_teardown:
            raise RingConfigError("the kernel backend needs both an RX and a TX ring (frame_nr > 0)")
        self._sock = sock
        self.rx_config = rx_config
        self.tx_config = tx_config
        self.skip_is_safe = skip_is_safe
        #: the kernel ring makes one skb of every TX frame, so an atomic
        #: frame is always a datagram of its own; nothing to track.
        self.solo_frames: set[int] = set()
        #: The kernel ring's overruns are reported when seen (take_overrun):
        #: frames are not counted here.
        self.frames_produced = 0
        self.overrun_marks: deque[int] = deque()
        self.overruns = 0
        self.truncated = 0
        self.tx_syscalls = 0
        self.rx_syscalls = 0
        self.lost_copies = 0  #: COPY frames whose datagram was not in the queue
        self.trimmed_dump_frames = 0  #: frames read at the 4.4.1 dump offset
        self.tx_rejected = 0  #: TX frames the kernel refused (EINVAL & co.)
        #: POLLIN at the last poll: a VALID/COPY frame or a queued datagram
        self.readable = False
        #: set by the ring between admitting requests and sending them: no
        #: poll may continue a dump into the frames their answers need
        self.poll_deferred = False
        self._overrun_pending = False
        self._closed = False
        self._set_rings(rx_config, tx_config)
        try:
            memory, unmap = syscalls.map_rings(rx_config.ring_size + tx_config.ring_size)
        except OSError:
            self._teardown_rings()
            raise
        self._memory = memory
        self._unmap: Callable[[], None] = unmap
        view = memoryview(memory)
        self._view = view
        ring_class = _KernelRxRing if detect_dump_offset else FrameRing
        self.rx = ring_class(view, rx_config, 0, page_size)
        self.tx = FrameRing(view, tx_config, rx_config.ring_size, page_size)
        self._detect = detect_dump_offset
        self._rx_frames = [view[self.rx.offset(i) : self.rx.offset(i) + rx_config.frame_size] for i in range(rx_config.frame_nr)]
        self._tx_data = [view[self.tx.data_offset(i) : self.tx.data_offset(i) + tx_config.data_size] for i in range(tx_config.frame_nr)]
        self._goodsize = nlmsg_goodsize(page_size)
        self._max_recvmsg_len = 0
        #: the frame the kernel's TX head points at (it consumes from here)
        self._tx_tail = 0

    # -- setup -----------------------------------------------------------------
    def _set_rings(self, rx_config: RingConfig, tx_config: RingConfig) -> None:
        try:
            _retry_eintr(self._sys.set_ring, NETLINK_RX_RING, rx_config.pack())
        except OSError as exc:
            raise self._unavailable(exc) from exc
        try:
            _retry_eintr(self._sys.set_ring, NETLINK_TX_RING, tx_config.pack())
        except OSError as exc:
            # Leave the socket as we found it: "auto" goes on with the
            # emulated backend on this very socket.
            self._teardown_rings()
            raise self._unavailable(exc) from exc

    def _teardown_rings(self) -> None:
        for option in (NETLINK_TX_RING, NETLINK_RX_RING):
            try:
                self._sys.set_ring(option, RingConfig.teardown().pack())
            except OSError:
                pass

    def _unavailable(self, exc: OSError) -> Exception:
        release = getattr(self._sys, "kernel_release", _sys.kernel_release())
        if exc.errno == errno.ENOPROTOOPT:
            return BackendUnavailableError(
                errno.ENOPROTOOPT,
                f"the kernel ring backend is not available: Linux {release} has no netlink mmap ring "
                "(setsockopt NETLINK_RX_RING answered ENOPROTOOPT). The ring was removed in Linux 4.6 "
                "(and from the stable branches); use backend='auto' or backend='emulated'",
            )
        if exc.errno == errno.EPERM:
            return BackendUnavailableError(
                errno.EPERM,
                f"the kernel refused the netlink mmap ring on Linux {release} (EPERM): setting a ring needs "
                "CAP_NET_ADMIN in the initial user namespace; run with that capability or use backend='emulated'",
            )
        if exc.errno == errno.EINVAL:
            return RingConfigError(
                f"the kernel rejected the ring geometry rx={self.rx_config} tx={self.tx_config} (EINVAL) "
                f"although it passed the known checks for {self._sys.page_size}-byte pages"
            )
        return exc

    def fileno(self) -> int:
        return int(self._sock.fileno())

    # -- RX ----------------------------------------------------------------------
    def fill(self) -> bool:
        """Poll the socket: this is where the kernel continues a running dump
        (netlink_poll), and where an overrun shows up (POLLERR). The kernel
        fills frames itself, so the ring is never "full" from our side."""
        if self._closed:
            return False
        if self.poll_deferred:
            # Frames are walked without a poll; the flush that sends the
            # admitted requests lifts this, and the ring drains right after.
            self.readable = False
            return False
        try:
            revents = _retry_eintr(self._sys.poll)
        except OSError:
            revents = select.POLLERR
        self.rx_syscalls += 1
        if revents & select.POLLERR:
            self._collect_error()
        self.readable = bool(revents & select.POLLIN)
        return False

    def _collect_error(self) -> None:
        try:
            error = _retry_eintr(self._sys.take_error)
        except OSError:
            return
        self.rx_syscalls += 1
        if error == errno.ENOBUFS:
            # netlink_overrun(): messages were dropped (ring or rcvbuf full).
            self.overruns += 1
            self._overrun_pending = True
        elif error:
            log.debug("aionlmmap: netlink socket error %s", errno.errorcode.get(error, error))

    def subscribed(self) -> bool:
        """The socket joined a multicast group: a change it requests may be
        notified to it as well (a frame more per request, see answer_room).
        A syscalls object that cannot tell counts as subscribed."""
        ask = getattr(self._sys, "subscribed", None)
        return True if ask is None else bool(ask())

    def take_overrun(self) -> bool:
        pending = self._overrun_pending
        self._overrun_pending = False
        return pending

    def frame_data(self, index: int, length: int) -> memoryview:
        frame = self._rx_frames[index]
        start = NL_MMAP_HDRLEN
        if self._detect:
            first = _U32.unpack_from(frame, NL_MMAP_HDRLEN)[0]
            if not NLMSG_HDRLEN <= first <= length:
                start = self._trimmed_dump_offset(frame, length)
        return frame[start : start + length]

    def _trimmed_dump_offset(self, frame: memoryview, length: int) -> int:
        # netlink_dump() on 4.4.1 does skb_reserve(tailroom - alloc_size) on
        # ring skbs too, so the chunk starts at frame_size - alloc_size.
        # alloc_size is NLMSG_GOODSIZE, or max_recvmsg_len once a recvmsg
        # used a larger buffer (capped at 16 KiB), or a family's
        # min_dump_alloc: try the known sizes, keep the one whose messages
        # tile exactly nm_len bytes.
        frame_size = len(frame)
        candidates = sorted({self._goodsize, self._max_recvmsg_len, _MAX_RECVMSG_LEN, 32768}, reverse=True)
        for alloc_size in candidates:
            start = frame_size - alloc_size
            if start <= NL_MMAP_HDRLEN or start + length > frame_size:
                continue
            if _tiles(frame, start, length):
                self.trimmed_dump_frames += 1
                return start
        return NL_MMAP_HDRLEN  # let the parser count it as malformed

    def read_copy(self, index: int, length: int) -> bytes:
        size = max(length, NLMSG_HDRLEN)
        self._max_recvmsg_len = min(max(self._max_recvmsg_len, size), _MAX_RECVMSG_LEN)
        for _ in range(_EINTR_RETRIES):
            try:
                self.rx_syscalls += 1
                data, flags = self._sys.receive(size)
            except InterruptedError:
                continue
            except BlockingIOError:
                # The COPY frame's datagram is not queued (someone else read
                # it): count it, release the frame, go on.
                self.lost_copies += 1
                return b""
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # sk_err is reported by the next recvmsg, once; the
                    # datagram is still queued behind it.
                    self.overruns += 1
                    self._overrun_pending = True
                    continue
                raise
            if flags & socket.MSG_TRUNC:
                self.truncated += 1
                return b""
            return data
        return b""

    def answer_room(self, start: int) -> int:
        """How many answers the kernel can put in frames now, counted from
        ``start`` (the next frame the ring will walk).

        Fact c.8 (4.4.1): an ACK is built in a frame (netlink_ack ->
        netlink_alloc_skb -> netlink_forward_ring) and with no UNUSED frame
        at the kernel's head it is dropped with ENOBUFS, never queued; a
        COPY-path answer needs the head frame UNUSED too
        (netlink_ring_set_copied). The kernel's head sits past the frames
        that hold data not walked yet; from there, the UNUSED frames up to
        the first busy one are the room (the COPY path does not step past
        SKIP, so neither does this count)."""
        rx = self.rx
        frame_nr = rx.frame_nr
        status = rx.status
        index = start
        for _ in range(frame_nr):
            if status(index) == UNUSED:
                break
            index = rx.next_index(index)
        else:
            return 0
        room = 0
        for _ in range(frame_nr):
            if status(index) != UNUSED:
                break
            room += 1
            index = rx.next_index(index)
        return room

    # -- TX ----------------------------------------------------------------------
    def tx_data(self, index: int) -> memoryview:
        return self._tx_data[index]

    def flush(self) -> list[TxFailure]:
        self.solo_frames.clear()
        self.poll_deferred = False
        tx = self.tx
        failures: list[TxFailure] = []
        for _ in range(tx.frame_nr + 1):  # bounded: each round sends or neutralises a frame
            committed = self._committed_frames()
            if not committed:
                break
            error: OSError | None = None
            try:
                self.tx_syscalls += 1
                _retry_eintr(self._sys.send_frames)
            except OSError as exc:
                error = exc
            sent = 0
            for index in committed:
                if tx.status(index) != UNUSED:
                    break
                sent += 1
            for _index in range(sent):
                self._tx_tail = tx.next_index(self._tx_tail)
            if error is None:
                if sent == len(committed):
                    break
                continue  # a frame turned VALID behind a gap meanwhile: go again
            if sent == len(committed):
                failures.append(TxFailure([], error))
                break
            # The kernel stopped at committed[sent] and left it VALID with its
            # TX head on it (EINVAL: nm_len > frame_size - 24, and the count of
            # frames sent before it is lost). nm_len 0 is consumed silently,
            # so the frames behind it can still go.
            bad = committed[sent]
            self.tx_rejected += 1
            failures.append(TxFailure([bad], error))
            _U32.pack_into(self._view, tx.offset(bad) + 4, 0)
        return failures

    def _committed_frames(self) -> list[int]:
        tx = self.tx
        frames: list[int] = []
        index = self._tx_tail
        for _ in range(tx.frame_nr):
            if tx.status(index) != VALID:
                break
            frames.append(index)
            index = tx.next_index(index)
        return frames

    # -- teardown ----------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for view in self._rx_frames:
            view.release()
        for view in self._tx_data:
            view.release()
        self._rx_frames = []
        self._tx_data = []
        self._view.release()
        try:
            self._unmap()
        except BufferError:
            # A caller still holds a view into frame memory: the mapping (and
            # the fd mmap dup()ed) go away when that view is collected.
            log.debug("aionlmmap: ring memory still exported at close; it is unmapped when the last view goes")


def _tiles(frame: memoryview, start: int, length: int) -> bool:
    """True if nlmsghdrs starting at ``start`` cover exactly ``length`` bytes."""
    offset = start
    end = start + length
    for _ in range(length // NLMSG_HDRLEN + 1):
        if offset == end:
            return True
        if end - offset < NLMSG_HDRLEN:
            return False
        msg_len = _NLMSG_LEN_TYPE.unpack_from(frame, offset)[0]
        if msg_len < NLMSG_HDRLEN or offset + msg_len > end:
            return False
        if offset + msg_len == end:
            return True
        offset += (msg_len + 3) & ~3
        if offset > end:
            return False
    return offset == end
