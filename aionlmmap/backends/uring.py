"""The io_uring ring: the kernel writes datagrams straight into our frames.

What the netlink mmap ring did before Linux 4.6, io_uring does today
(multishot receive, Linux 6.0; provided-buffer rings, 5.19): one multishot
``IORING_OP_RECVMSG`` on the netlink socket takes a buffer from a ring of
buffers we provide for each datagram, and posts a completion (buffer id,
length, ``IORING_CQE_F_MORE`` while it stays armed) on the shared CQ ring.
No syscall per datagram: the event loop watches the io_uring fd, readable
while completions wait in the CQ ring, and completions are read from shared
memory (taking them is what makes the fd quiet again).

How it maps onto frames (the Ring above is unchanged):

- A provided buffer is a frame's data area. Buffers are provided in frame
  order from the producer head, stepping past SKIP frames, up to the first
  busy frame, as ``netlink_forward_ring`` did; the kernel uses them in that
  order, so completions arrive in frame order.
- A completion makes its frame VALID: the kernel wrote ``struct
  io_uring_recvmsg_out``, the sender's ``sockaddr_nl`` and the control
  messages (NETLINK_PKTINFO: the group; SCM_CREDENTIALS) in front of the
  datagram, and we fill nm_len, nm_group, nm_pid, nm_uid, nm_gid from them.
  The buffer starts 60 bytes before the frame header, so that the datagram
  lands at +24 and the header is not touched (with SO_PASSCRED the prefix
  goes into the data area instead, see ``_in_place``).
- Releasing a frame makes it UNUSED; it is provided again when the receive
  next ends. ``hold()`` marks it SKIP: it stays out of the buffer ring.
- A dry buffer ring ends the multishot receive (-ENOBUFS without F_MORE,
  no buffer consumed): datagrams wait in the socket's receive queue; the
  free frames are provided and the receive armed again (one
  ``io_uring_enter`` per lap of the ring). With no free frame, the first
  release schedules that on the loop (call_soon: no syscall to wake it).
- Buffers are provided only while nothing is armed, so the frames we count
  as the kernel's are exactly the ones it has. -ENOBUFS while it had some
  is then the socket's own overrun (netlink_overrun set sk_err; the receive
  met it in skb_recv_datagram, which clears it). The socket drops all new
  datagrams until its queue is read empty, so what is queued is older than
  the loss: we read the queue ourselves until it is empty and place the
  overrun there (``_catch_up``), then arm again. A socket overrun while the
  ring is dry stays in sk_err and comes out on the next receive.
- A datagram larger than a frame's data area minus the prefix comes with
  MSG_TRUNC: the receive already took it off the socket (the emulated
  ring reads such a datagram whole behind the frame; here nothing is left
  to read), so it is counted in ``truncated``, goes out as an empty frame
  and is reported in its place like an overrun (``overrun_marks``): a
  loss the reader hears of, never a datagram cut short or a silent gap.
  ``auto`` takes uring only for frames that hold a whole dump chunk
  (:func:`holds_a_dump_chunk`).
- TX: the VALID TX frames go out as few datagrams as the emulated backend
  sends, one ``IORING_OP_SENDMSG`` each (an iovec per frame), all
  submitted, and waited for, with one ``io_uring_enter``.
- The per-datagram work, ``_reap`` (completions into frame headers) and
  ``_provide`` (frames into the buffer ring), has compiled twins
  (``_speedups_uring.pxi``); these methods are their reference.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import mmap
import os
import socket
import struct
from collections import deque
from typing import Any

from .._extensions import speedups as _speedups
from .._sys import PKTINFO, UCRED
from ..constants import NETLINK_PKTINFO, SOL_NETLINK
from ..errors import BackendUnavailableError
from ..frames import _STATUS, NL_MMAP_HDR, SKIP, UNUSED, VALID, FrameRing, RingConfig
from . import TxFailure, tx_datagrams
from . import _uring_sys as sys_
from ._uring_sys import RECVMSG_OUT, Uring

__all__ = ["UringBackend"]

log = logging.getLogger("aionlmmap")

_SOCKADDR_NL = 12
_CMSG_HDR = struct.Struct("=QiI")  #: struct cmsghdr {size_t len; int level; int type}
_CONTROL_SPACE = socket.CMSG_SPACE(PKTINFO.size) + socket.CMSG_SPACE(UCRED.size)
#: recvmsg_out, the sender's address and the control messages, in front of each datagram
_PREFIX = RECVMSG_OUT.size + _SOCKADDR_NL + _CONTROL_SPACE
_SCM_CREDENTIALS = 2
_RECV = 1 << 62  #: user_data of the multishot receive
_SEND = 1 << 61  #: user_data of a send: | the flush's serial << 16 | its datagram's number
_CANCEL = 1 << 60
_WAKE = 1 << 58  #: user_data of a no-op whose completion wakes the loop
_IORING_OP_ASYNC_CANCEL = 14
_MAX_RECV_ERRORS = 16
#: COOP_TASKRUN (Linux 5.19): the receive work a datagram's arrival queues
#: for this thread runs when the thread next enters the kernel, instead of
#: an IPI interrupting it; the loop's epoll_wait is such an entry.
_SETUP_FLAGS = sys_.SETUP_FLAGS  #: re-arms after unexpected errors in a row before the reader gives up
_U32 = struct.Struct("=I")
_pack_header_into = NL_MMAP_HDR.pack_into
_PKTINFO_SPACE = socket.CMSG_SPACE(PKTINFO.size)
#: the prefix of a datagram that carries the group and nothing else: recvmsg_out
#: (namelen, controllen, payloadlen, flags), sockaddr_nl's nl_pid, and the
#: first control message's header and first u32 (NETLINK_PKTINFO's group)
_unpack_prefix = struct.Struct("=IIII4xI4xQiII").unpack_from
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: the enum's __and__ is slow per datagram
_F_BUFFER = sys_.IORING_CQE_F_BUFFER
_F_MORE = sys_.IORING_CQE_F_MORE
_unpack_status = struct.Struct("=I").unpack_from
#: struct msghdr {name, namelen, iov, iovlen, control, controllen, flags} and struct iovec
_MSGHDR = struct.Struct("=QI4xQQQQi4x")
_IOVEC = struct.Struct("=QQ")
_unpack_out = RECVMSG_OUT.unpack_from
_unpack_cmsg = _CMSG_HDR.unpack_from


class _UringRxRing(FrameRing):
    """The RX ring, calling back on the first release while the receive is
    starved (buffer ring dry, no free frame to provide)."""

    __slots__ = ("starved", "on_starved_release")

    def release(self, index: int) -> None:
        _STATUS.pack_into(self.buffer, self.offsets[index], UNUSED)  # FrameRing.release, inlined
        if self.starved:
            self.starved = False
            self.on_starved_release()


#: The largest datagram a netlink dump sends: netlink_recvmsg caps
#: max_recvmsg_len at SKB_WITH_OVERHEAD(32768), and netlink_dump allocates
#: its skb no larger (a family's min_dump_alloc aside).
DUMP_CHUNK_MAX = 32768


def holds_a_dump_chunk(rx_config: RingConfig) -> bool:
    """Whether every RX frame of ``rx_config`` takes a whole dump chunk
    behind the receive prefix, wherever the prefix goes: what ``auto``
    asks before it takes this backend, since a datagram larger than a
    frame is lost here, where the emulated ring delivers it as a COPY
    frame."""
    return rx_config.data_size - _PREFIX >= DUMP_CHUNK_MAX


def _next_power_of_two(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


class UringBackend:
    """Frames filled by io_uring's multishot receive into a provided-buffer
    ring (Linux >= 6.0). ``aionlmmap.open(..., backend="uring")``;
    :class:`BackendUnavailableError` names why where it cannot work."""

    name = "uring"
    skip_is_safe = True
    rx_views: list[memoryview] | None = None

    def __init__(self, sock: socket.socket, rx_config: RingConfig, tx_config: RingConfig, *, uring: Uring | None = None) -> None:
        available, reason = sys_.probe()
        if not available and uring is None:
            raise BackendUnavailableError(errno.ENOSYS, f"the uring backend is not available: {reason}; use backend='auto' or 'emulated'")
        rx_config.validate()
        tx_config.validate()
        if rx_config.data_size <= _PREFIX:
            raise ValueError(f"RX frames of {rx_config.frame_size} bytes leave no room beside the {_PREFIX}-byte receive header")
        self._sock = sock
        self._fd = sock.fileno()
        self.rx_config = rx_config
        self.tx_config = tx_config
        # Where the kernel's prefix goes. Without SO_PASSCRED it writes
        # recvmsg_out, the address and the PKTINFO message in the 60 bytes
        # before the frame header (the unused tail of the frame before: a
        # datagram there ends sooner, see _capacity) and the header itself
        # stays ours, so the datagram lands at +24 like every other
        # backend's, and the Ring's fast paths (rx_views) apply. With
        # credentials the control messages would reach into the header, so
        # the whole prefix goes into the data area instead (frame_data).
        self._in_place = not sock.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED)
        lead = mmap.PAGESIZE  # room for frame 0's prefix
        self._memory = mmap.mmap(-1, lead + rx_config.ring_size + tx_config.ring_size)
        self._base, self._anchor = sys_.address_of(self._memory)
        view = memoryview(self._memory)
        self._view = view
        self.rx = _UringRxRing(self._memory, rx_config, lead)
        self.rx.starved = False
        self.rx.on_starved_release = self._schedule_refill
        self.tx = FrameRing(self._memory, tx_config, lead + rx_config.ring_size)
        rx_data = rx_config.data_size
        self._rx_data = [view[self.rx.data_offset(i) : self.rx.data_offset(i) + rx_data] for i in range(rx_config.frame_nr)]
        self._tx_data = [view[self.tx.data_offset(i) : self.tx.data_offset(i) + tx_config.data_size] for i in range(tx_config.frame_nr)]
        if self._in_place:
            self._buffer_at = [self.rx.data_offset(i) - _PREFIX for i in range(rx_config.frame_nr)]
            self._buffer_size = rx_config.frame_size
            self.rx_views = self._rx_data
        else:
            self._buffer_at = [self.rx.data_offset(i) for i in range(rx_config.frame_nr)]
            self._buffer_size = rx_data
        self._capacity = self._buffer_size - _PREFIX
        entries = _next_power_of_two(tx_config.frame_nr + 4)
        try:
            self._uring = uring or Uring(
                entries, _next_power_of_two(2 * (rx_config.frame_nr + tx_config.frame_nr) + 8), _next_power_of_two(rx_config.frame_nr), _SETUP_FLAGS
            )
        except OSError as exc:
            self._release_memory()
            if isinstance(exc, BackendUnavailableError):
                raise
            raise BackendUnavailableError(exc.errno or errno.EIO, f"the uring backend could not set up io_uring: {exc}") from exc
        # struct msghdr for the multishot RECVMSG: only msg_namelen and
        # msg_controllen matter (the layout of each buffer's prefix).
        self._msghdr = bytearray(56)
        struct.pack_into("=I", self._msghdr, 8, _SOCKADDR_NL)
        struct.pack_into("=Q", self._msghdr, 40, _CONTROL_SPACE)
        self._msghdr_anchor = (ctypes.c_char * 56).from_buffer(self._msghdr)
        #: frames provided to the kernel and not completed yet, in order
        self._in_kernel: deque[int] = deque()
        self._provided = [False] * rx_config.frame_nr
        self._producer = 0  #: the next frame to provide
        self._armed = False
        self._overrun_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recv_errors = 0
        self.solo_frames: set[int] = set()
        self.frames_produced = 0
        self.overrun_marks: deque[int] = deque()
        self.overruns = 0
        self.truncated = 0
        self.tx_syscalls = 0
        self.rx_syscalls = 0
        self.dry_rings = 0  #: times the multishot receive ended on a dry buffer ring
        self.rearms = 0
        self._tx_tail = 0
        self._send_results: dict[int, int] = {}
        self._awaited: set[int] = set()  #: user_data of sends whose completion a flush waits for
        self._send_serial = 0
        self.tx_datagrams = 0
        self._tx_meta = bytearray(0)
        self._tx_meta_anchor: Any = None
        self._grow_tx_meta(tx_config.frame_nr * (_MSGHDR.size + 16))
        self._closed = False
        self._provide()
        self._arm()

    def fileno(self) -> int:
        """The io_uring fd: readable while completions wait in the CQ ring
        (io_uring_poll), so the loop's level-triggered watch needs no
        syscall of ours to reset it: taking the completions does."""
        return self._uring.fd

    # -- RX ------------------------------------------------------------------
    def fill(self) -> bool:
        """Take the posted completions; once the receive has ended (dry
        buffer ring, overrun), provide the free frames and arm it again.
        True when no frame could be provided (the ring is full: the Ring
        may copy frames out for a starving waiter)."""
        if self._closed:
            return False
        if self._loop is None:
            # The loop whose reader calls us (asking once: get_running_loop
            # costs a getpid() syscall).
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        self._reap()
        for _ in range(4):  # bounded: each round arms once
            if self._armed:
                break
            # Buffers are provided only while no receive is armed: then the
            # frames we count in the kernel's hands are exactly those it
            # has, and an -ENOBUFS finding some is the socket's overrun.
            if self._overrun_pending:
                self._catch_up()
                if self._overrun_pending:
                    break  # out of frames: goes on when one is released
            self._provide()
            if not self._in_kernel:
                break
            self._arm()  # runs at once on what the socket holds
            self._reap()
        full = not self._armed and not self._in_kernel
        self.rx.starved = full
        return full

    def _catch_up(self) -> None:
        """After a socket overrun: read what the socket queued ourselves
        (recvmsg into the next free frames, as the emulated ring does) and
        place the loss where a receive finds the queue empty (EAGAIN).

        Why there: netlink_overrun() set NETLINK_S_CONGESTED, and the
        socket drops every new datagram until a receive leaves its queue
        empty (netlink_rcv_wake), so what is queued is older than the loss
        and what comes after the queue ran empty is newer. A multishot
        receive would go on past that point without saying where (netlink
        reports no IORING_CQE_F_SOCK_NONEMPTY), and once re-armed from a
        release it runs until the next fill(): the loss would be placed
        after datagrams newer than it. The buffers provided and unused are
        taken back first (the buffer ring registered again, empty: two
        syscalls, once per overrun). The one race left is the emulated
        ring's too: a datagram arriving between the receive that emptied
        the queue and the next one is taken for an older one."""
        rx = self.rx
        if self._in_kernel:
            # The frames provided are the next ones in order: take them
            # back (nothing is armed), to read into them ourselves.
            first = self._in_kernel[0]
            self._uring.reset_buffers()
            for index in self._in_kernel:
                self._provided[index] = False
            self._in_kernel.clear()
            self._producer = rx.head = first
        recvmsg_into = self._recvmsg_into
        memory = self._memory
        offsets = rx.offsets
        frame_nr = rx.frame_nr
        index = self._producer
        data_at = _PREFIX if not self._in_place else 0
        for _ in range(frame_nr + 1):  # bounded: one lap of the ring
            if not self._overrun_pending:
                break
            status = _unpack_status(memory, offsets[index])[0]
            if status == SKIP:
                index = index + 1 if index + 1 < frame_nr else 0
                continue
            if status != UNUSED:
                # Every free frame took a datagram: whether the last one
                # emptied the queue only a look tells (as
                # EmulatedBackend._probe_queue does).
                try:
                    self.rx_syscalls += 1
                    self._peek_queue()
                except BlockingIOError:
                    self._mark_overrun()
                except OSError as exc:
                    self._caught_up_to_new_loss(exc)
                break
            data = self._rx_data[index][data_at : data_at + self._capacity]
            try:
                self.rx_syscalls += 1
                nbytes, ancdata, flags, address = recvmsg_into(data)
            except BlockingIOError:
                self._mark_overrun()  # the queue ran empty here
                break
            except OSError as exc:
                self._caught_up_to_new_loss(exc)
                continue
            group = uid = gid = 0
            for level, kind, payload in ancdata:
                if level == SOL_NETLINK and kind == NETLINK_PKTINFO:
                    group = PKTINFO.unpack_from(payload)[0]
                elif level == socket.SOL_SOCKET and kind == _SCM_CREDENTIALS:
                    _pid, uid, gid = UCRED.unpack_from(payload)
            truncated = flags & _MSG_TRUNC
            if truncated:
                self.truncated += 1
                nbytes = 0
            _pack_header_into(memory, offsets[index], VALID, nbytes, group, address[0] if address else 0, uid, gid)
            self.frames_produced += 1
            if truncated:
                self.overrun_marks.append(self.frames_produced)
            index = index + 1 if index + 1 < frame_nr else 0
        self._producer = rx.head = index

    def _recvmsg_into(self, data: memoryview) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        return self._sock.recvmsg_into([data], _CONTROL_SPACE, socket.MSG_DONTWAIT)

    def _peek_queue(self) -> None:
        """BlockingIOError if the socket's queue is empty (OSError ENOBUFS
        if it overran again)."""
        self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)

    def _caught_up_to_new_loss(self, exc: OSError) -> None:
        if exc.errno == errno.ENOBUFS:
            # A new loss. The socket reports one only on turning congested
            # again, which needs its queue read empty: the earlier loss
            # lies before this point.
            self._mark_overrun()
            self.overruns += 1
            self._overrun_pending = True
        elif exc.errno != errno.EINTR:
            raise exc

    def _mark_overrun(self) -> None:
        if self._overrun_pending:
            self._overrun_pending = False
            self.overrun_marks.append(self.frames_produced)

    def _schedule_refill(self) -> None:
        # A frame came back while nothing is armed: provide it and arm the
        # receive once the consumer's current step is over (more frames are
        # usually released by then), from the loop, without a syscall to
        # wake it. (starved is only set by fill(), which found the loop.)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon(self._refill)

    def _refill(self) -> None:
        if self._closed or self._armed:
            return
        if self._overrun_pending:
            # The catch-up's frames reach the Ring only through fill(): a
            # no-op's completion makes the ring fd readable, so the loop
            # runs it.
            self._wake_reader()
            return
        self._provide()
        if not self._in_kernel:
            # Still nothing to provide: the frame at the producer head is
            # pinned (frames are provided in ring order) although one behind
            # it came back. The Ring decided whether to pause on its last
            # drain, when the ring was not starved; without a drain now it
            # neither pauses (so no release resumes it) nor copies the head
            # frame out for a waiting dump, and nothing armed will ever wake
            # it (tests/test_stress_cancel.py hung on uring, seed 910674784).
            self.rx.starved = True
            self._wake_reader()
        else:
            self._arm()  # what it posts makes the ring fd readable: fill() runs

    def _wake_reader(self) -> None:
        """Make the ring fd readable (a no-op's completion) so the loop runs
        the Ring's drain, and with it fill()."""
        self._uring.prepare(sys_.IORING_OP_NOP, -1, 0, 0, _WAKE)
        self.rx_syscalls += 1
        self._uring.submit()

    def _provide(self) -> None:
        rx = self.rx
        provided = self._provided
        index = self._producer
        memory = self._memory
        offsets = rx.offsets
        buffer_at = self._buffer_at
        base = self._base
        size = self._buffer_size
        frame_nr = rx.frame_nr
        in_kernel = self._in_kernel
        batch: list[tuple[int, int, int]] = []
        for _ in range(frame_nr):
            if provided[index]:
                break
            status = _unpack_status(memory, offsets[index])[0]
            if status == UNUSED:
                batch.append((base + buffer_at[index], size, index))
                provided[index] = True
                in_kernel.append(index)
            elif status != SKIP:
                break
            index += 1
            if index == frame_nr:
                index = 0
        self._producer = index
        # The producer head, where the Ring starts copying frames out for a
        # starving waiter when the ring is full (FrameKeeper._relieve).
        rx.head = index
        if batch:
            self._uring.provide_many(batch)

    def _arm(self) -> None:
        uring = self._uring
        uring.prepare(
            sys_.IORING_OP_RECVMSG,
            self._fd,
            ctypes.addressof(self._msghdr_anchor),
            0,
            _RECV,
            flags=sys_.IOSQE_BUFFER_SELECT,
            ioprio=sys_.IORING_RECV_MULTISHOT,
        )
        self.rx_syscalls += 1
        uring.submit()
        self._armed = True
        self.rearms += 1

    def _reap(self) -> int:
        completions = self._uring.completions()
        if completions:
            self._take(completions)
        return len(completions)

    def _take(self, completions: list[tuple[int, int, int]]) -> None:
        # The common completion, in one tight loop: a datagram in the frame
        # that was next, carrying only its group (NETLINK_PKTINFO), whole.
        # Anything else goes through _on_receive.
        memory = self._memory
        buffer_at = self._buffer_at
        rx_offsets = self.rx.offsets
        in_kernel = self._in_kernel
        provided = self._provided
        write_header = _pack_header_into
        fast = self._in_place
        produced = 0
        for user_data, res, flags in completions:
            if user_data == _RECV:
                if fast and res >= 0 and flags & _F_BUFFER and in_kernel and in_kernel[0] == flags >> 16:
                    index = in_kernel.popleft()
                    provided[index] = False
                    if not flags & _F_MORE:
                        self._armed = False
                    _namelen, control_length, payload_length, msg_flags, sender, _cmsg_length, level, kind, group = _unpack_prefix(memory, buffer_at[index])
                    if control_length == _PKTINFO_SPACE and level == SOL_NETLINK and kind == NETLINK_PKTINFO and payload_length == res - _PREFIX and not msg_flags & _MSG_TRUNC:
                        self._recv_errors = 0
                        write_header(memory, rx_offsets[index], VALID, payload_length, group, sender, 0, 0)
                        produced += 1
                        continue
                    in_kernel.appendleft(index)  # not the common case after all
                    provided[index] = True
                self.frames_produced += produced
                produced = 0
                self._on_receive(res, flags)
            elif user_data & _SEND:
                if user_data in self._awaited:
                    self._send_results[user_data] = res
        self.frames_produced += produced

    def _on_receive(self, res: int, flags: int) -> None:
        if not flags & sys_.IORING_CQE_F_MORE:
            self._armed = False
        if res < 0:
            if res == -errno.ENOBUFS:
                if self._in_kernel:
                    # Buffers were there: the socket itself dropped messages
                    # (sk_err = ENOBUFS, reported once by the receive). While
                    # congested the socket drops everything new
                    # (NETLINK_S_CONGESTED until the queue is read empty),
                    # so what is queued now is older than the loss: the
                    # report goes where the queue has run empty (fill).
                    self.overruns += 1
                    self._overrun_pending = True
                else:
                    self.dry_rings += 1
            elif res != -errno.ECANCELED and res != -errno.EINTR:
                self._recv_errors += 1
                log.debug("aionlmmap: multishot receive failed: %s", os.strerror(-res))
                if self._recv_errors > _MAX_RECV_ERRORS:
                    raise OSError(-res, f"the io_uring receive on the netlink socket keeps failing: {os.strerror(-res)}")
            return
        self._recv_errors = 0
        if not flags & sys_.IORING_CQE_F_BUFFER:
            return
        index = flags >> sys_.IORING_CQE_BUFFER_SHIFT
        expected = self._in_kernel.popleft() if self._in_kernel else -1
        if index != expected:
            # Buffers are taken in the order provided; anything else means
            # our bookkeeping is wrong: better loud than misrouted.
            raise RuntimeError(f"io_uring used buffer {index} where frame {expected} was next")
        self._provided[index] = False
        memory = self._memory
        start = self._buffer_at[index]
        _namelen, control_length, payload_length, msg_flags = _unpack_out(memory, start)
        sender = _U32.unpack_from(memory, start + RECVMSG_OUT.size + 4)[0]
        group = uid = gid = 0
        offset = start + RECVMSG_OUT.size + _SOCKADDR_NL
        end = offset + min(control_length, _CONTROL_SPACE)
        for _ in range(4):  # at most PKTINFO and credentials
            if end - offset < _CMSG_HDR.size:
                break
            length, level, kind = _unpack_cmsg(memory, offset)
            if length < _CMSG_HDR.size or offset + length > end:
                break
            if level == SOL_NETLINK and kind == NETLINK_PKTINFO:
                group = PKTINFO.unpack_from(memory, offset + _CMSG_HDR.size)[0]
            elif level == socket.SOL_SOCKET and kind == _SCM_CREDENTIALS:
                _pid, uid, gid = UCRED.unpack_from(memory, offset + _CMSG_HDR.size)
            offset += (length + 7) & ~7
        copied = res - _PREFIX
        lost = msg_flags & _MSG_TRUNC or copied < payload_length or copied < 0
        if lost:
            # Larger than the frame: the receive consumed it, the rest is
            # gone (io_recvmsg_multishot copies what fits and sets
            # MSG_TRUNC). Counted, handed on as an empty frame (released
            # unread), never delivered cut short, and reported in its
            # place as a loss, as an overrun is.
            self.truncated += 1
            copied = 0
        _pack_header_into(self._memory, self.rx.offset(index), VALID, copied, group, sender, uid, gid)
        self.frames_produced += 1
        if lost:
            self.overrun_marks.append(self.frames_produced)

    def take_overrun(self) -> bool:
        return False  # placed in the stream through overrun_marks

    def frame_data(self, index: int, length: int) -> memoryview:
        if self._in_place:
            return self._rx_data[index][:length]
        return self._rx_data[index][_PREFIX : _PREFIX + length]

    def read_copy(self, index: int, length: int) -> bytes:
        raise RuntimeError(f"COPY frame {index} on the uring backend (it never produces one)")

    # -- TX ------------------------------------------------------------------
    def tx_data(self, index: int) -> memoryview:
        return self._tx_data[index]

    def _datagrams(self) -> list[tuple[list[int], list[tuple[int, int]], int]]:
        """The VALID TX frames from the tail in the emulated backend's
        datagrams (:func:`tx_datagrams`). Each: (frames, (address, length)
        pieces, total length)."""
        tx = self.tx
        limit = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32
        base = self._base
        grouped, self._tx_tail = tx_datagrams(tx, self._tx_tail, self.solo_frames, limit)
        return [
            (
                [index for index, _length in datagram],
                [(base + tx.data_offset(index), length) for index, length in datagram if length],
                sum(length for _index, length in datagram),
            )
            for datagram in grouped
        ]

    def flush(self) -> list[TxFailure]:
        """The VALID TX frames as few datagrams as the emulated backend
        sends (:meth:`_datagrams`), one IORING_OP_SENDMSG each, all submitted
        and waited for with one io_uring_enter (more only if the SQ is
        smaller)."""
        uring = self._uring
        failures: list[TxFailure] = []
        datagrams = self._datagrams()
        if not datagrams:
            return failures
        # struct msghdr and struct iovec arrays for the whole flush, in
        # memory that stays put until every send has completed (below).
        meta = self._tx_meta
        msghdrs = 0
        iovecs = len(datagrams) * _MSGHDR.size
        needed = iovecs + sum(len(pieces) for _frames, pieces, _total in datagrams) * 16
        if needed > len(meta):
            self._grow_tx_meta(needed)
            meta = self._tx_meta
        address = ctypes.addressof(self._tx_meta_anchor)
        self._send_serial = serial = (self._send_serial + 1) & 0xFFFFFFFF
        awaited = self._awaited
        queued = 0
        sent: list[tuple[int, list[int], int]] = []
        for number, (frames, pieces, total) in enumerate(datagrams):
            if not pieces:
                continue  # frames of nothing: no datagram
            first = iovecs
            for piece_address, length in pieces:
                _IOVEC.pack_into(meta, iovecs, piece_address, length)
                iovecs += 16
            _MSGHDR.pack_into(meta, msghdrs, 0, 0, address + first, len(pieces), 0, 0, 0)
            user_data = _SEND | (serial << 16) | number
            while not uring.prepare(sys_.IORING_OP_SENDMSG, self._fd, address + msghdrs, 1, user_data):
                self._enter(queued)
                queued = 0
            msghdrs += _MSGHDR.size
            queued += 1
            awaited.add(user_data)
            sent.append((user_data, frames, total))
        if queued:
            self._enter(queued)
        results = self._send_results
        for _ in range(64):  # bounded: sends to the kernel complete inline
            if all(user_data in results for user_data, _frames, _total in sent):
                break
            self._enter(0, wait=1)
        tx = self.tx
        for frames, _pieces, _total in datagrams:
            for frame in frames:
                tx.set_status(frame, UNUSED)
        for user_data, frames, total in sent:
            awaited.discard(user_data)
            res = results.pop(user_data, None)
            if res is None:
                failures.append(TxFailure(frames, OSError(errno.ETIMEDOUT, "the io_uring send did not complete")))
            elif res < 0:
                failures.append(TxFailure(frames, OSError(-res, os.strerror(-res))))
            elif res < total:
                failures.append(TxFailure(frames, OSError(errno.EMSGSIZE, f"short send: {res} of {total} bytes went out")))
        self.tx_datagrams += len(sent)
        return failures

    def _grow_tx_meta(self, size: int) -> None:
        del self._tx_meta_anchor
        self._tx_meta = bytearray(size)
        self._tx_meta_anchor = (ctypes.c_char * size).from_buffer(self._tx_meta)

    def _enter(self, queued: int, wait: int | None = None) -> None:
        self.tx_syscalls += 1
        self._uring.submit(wait=queued if wait is None else wait)
        self._reap_sends()

    def _reap_sends(self) -> None:
        """Take the posted completions for the sends. Receive completions
        among them are handled too (the CQ ring is read in order), and then
        the last completion stays in the CQ ring: the ring fd stays
        readable, so the loop runs fill() and the Ring walks the frames
        they produced (nothing else would wake it: the Ring drains after a
        flush only when it sent requests)."""
        uring = self._uring
        completions = uring.peek()
        if not completions:
            return
        if all(user_data & _SEND for user_data, _res, _flags in completions):
            uring.consume(len(completions))
            self._take(completions)
            return
        *handled, last = completions
        uring.consume(len(handled))
        self._take(handled)
        if last[0] & _SEND and last[0] in self._awaited:
            # Its result now; fill() skips it (no longer awaited then).
            self._send_results[last[0]] = last[1]
            self._awaited.discard(last[0])

    # -- teardown ------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.rx.starved = False
        uring = self._uring
        try:
            if self._armed:
                # Cancel the receive and wait for its last completion, so the
                # kernel writes no frame once the memory is gone.
                uring.prepare(_IORING_OP_ASYNC_CANCEL, -1, _RECV, 0, _CANCEL)
                uring.submit()
                for _ in range(16):
                    self._reap()
                    if not self._armed:
                        break
                    uring.submit(wait=1)
        except OSError:
            pass
        finally:
            uring.close()
            del self._msghdr_anchor
            self._tx_meta_anchor = None
            self._release_memory()

    def _release_memory(self) -> None:
        for views in (getattr(self, "_rx_data", []), getattr(self, "_tx_data", [])):
            for view in views:
                view.release()
        self._rx_data = []
        self._tx_data = []
        self._view.release()
        self._anchor = None
        try:
            self._memory.close()
        except BufferError:
            pass  # a user still holds a view; the mapping goes with it


# The compiled twins of the per-datagram work, taking completions off the CQ
# ring and providing frames to the buffer ring (aionlmmap/_speedups_uring.pxi),
# take the methods unless pure Python was chosen (AIONLMMAP_NO_EXTENSIONS=1);
# the pure methods stay the reference (tests/test_uring_twins.py).
_pure_reap = UringBackend._reap
_pure_provide = UringBackend._provide
if _speedups is not None:
    UringBackend._reap = _speedups.uring_reap  # type: ignore[method-assign]
    UringBackend._provide = _speedups.uring_provide  # type: ignore[method-assign]
