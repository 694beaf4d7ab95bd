"""The io_uring ring: the kernel writes datagrams straight into our frames.

What the netlink mmap ring did before Linux 4.6, io_uring does today
(multishot receive, Linux 6.0; provided-buffer rings, 5.19): one multishot
``IORING_OP_RECVMSG`` on the netlink socket takes a buffer from a ring of
buffers we provide for each datagram, and posts a completion (buffer id,
length, ``IORING_CQE_F_MORE`` while it stays armed) on the shared CQ ring.
No syscall per datagram: an eventfd registered with the ring
(``IORING_REGISTER_EVENTFD``) wakes the event loop, and completions are read
from shared memory.

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
  the loss: the overrun is placed once the re-armed receive has caught up.
  A socket overrun while the ring is dry stays in sk_err and comes out on
  the next receive.
- A datagram larger than a frame's data area minus the prefix comes with
  MSG_TRUNC: counted in ``truncated`` and delivered as an empty frame.
- TX: every VALID TX frame becomes one ``IORING_OP_SEND`` (a datagram), all
  submitted, and waited for, with one ``io_uring_enter``.
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

from .._sys import PKTINFO, UCRED
from ..constants import NETLINK_PKTINFO, SOL_NETLINK
from ..errors import BackendUnavailableError
from ..frames import NL_MMAP_HDR, SKIP, UNUSED, VALID, FrameRing, RingConfig
from . import TxFailure
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
_SEND = 1 << 61  #: user_data of a send: | TX frame index
_CANCEL = 1 << 60
_IORING_OP_ASYNC_CANCEL = 14
_MAX_RECV_ERRORS = 16  #: re-arms after unexpected errors in a row before the reader gives up
_U32 = struct.Struct("=I")
_pack_header_into = NL_MMAP_HDR.pack_into
_unpack_out = RECVMSG_OUT.unpack_from
_unpack_cmsg = _CMSG_HDR.unpack_from


class _UringRxRing(FrameRing):
    """The RX ring, calling back on the first release while the receive is
    starved (buffer ring dry, no free frame to provide)."""

    __slots__ = ("starved", "on_starved_release")

    def release(self, index: int) -> None:
        super().release(index)
        if self.starved:
            self.starved = False
            self.on_starved_release()


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
            self._uring = uring or Uring(entries, _next_power_of_two(2 * (rx_config.frame_nr + tx_config.frame_nr) + 8), _next_power_of_two(rx_config.frame_nr))
            self._eventfd = self._uring.register_eventfd()
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
        self._closed = False
        self._provide()
        self._arm()

    def fileno(self) -> int:
        """The eventfd the ring signals on completions (what the loop watches)."""
        return self._eventfd

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
        if not self._reap():
            # Nothing posted: reset the eventfd (level-triggered), then look
            # once more, for a completion posted in between. While
            # completions keep coming the eventfd is left set and a loop
            # wake costs no syscall here.
            try:
                self.rx_syscalls += 1
                os.eventfd_read(self._eventfd)
            except BlockingIOError:
                pass
            self._reap()
        for _ in range(4):  # bounded: each round arms once
            if self._armed:
                break
            # Buffers are provided only while no receive is armed: then the
            # frames we count in the kernel's hands are exactly those it
            # has, and an -ENOBUFS finding some is the socket's overrun.
            self._provide()
            if not self._in_kernel:
                break
            self._arm()  # runs at once on what the socket holds
            self._reap()
        if self._overrun_pending and self._armed:
            # Armed again and caught up (an armed receive posts what is
            # queued at once): the loss lies after what came so far.
            self._overrun_pending = False
            self.overrun_marks.append(self.frames_produced)
        full = not self._armed and not self._in_kernel
        self.rx.starved = full
        return full

    def _schedule_refill(self) -> None:
        # A frame came back while nothing is armed: provide it and arm the
        # receive once the consumer's current step is over (more frames are
        # usually released by then), from the loop, without a syscall to
        # wake it. Outside a loop, wake the loop through the eventfd.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon(self._refill)
            return
        try:
            os.eventfd_write(self._eventfd, 1)
        except OSError:
            pass

    def _refill(self) -> None:
        if self._closed or self._armed:
            return
        self._provide()
        if self._in_kernel:
            self._arm()  # what it posts wakes the loop (eventfd) for fill()
        else:
            self.rx.starved = True

    def _provide(self) -> None:
        rx = self.rx
        provided = self._provided
        index = self._producer
        uring = self._uring
        added = 0
        for _ in range(rx.frame_nr):
            if provided[index]:
                break
            status = rx.status(index)
            if status == UNUSED:
                uring.provide(self._base + self._buffer_at[index], self._buffer_size, index)
                provided[index] = True
                self._in_kernel.append(index)
                added += 1
            elif status != SKIP:
                break
            index = rx.next_index(index)
        self._producer = index
        # The producer head, where the Ring starts copying frames out for a
        # starving waiter when the ring is full (FrameKeeper._relieve).
        self.rx.head = index
        if added:
            uring.publish_buffers()

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
        for user_data, res, flags in completions:
            if user_data == _RECV:
                self._on_receive(res, flags)
            elif user_data & _SEND:
                self._send_results[user_data & 0xFFFFFFFF] = res
        return len(completions)

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
        if msg_flags & socket.MSG_TRUNC or copied < payload_length or copied < 0:
            # Larger than the frame: counted, handed on as an empty frame
            # (released unread), never delivered cut short.
            self.truncated += 1
            copied = 0
        _pack_header_into(self._memory, self.rx.offset(index), VALID, copied, group, sender, uid, gid)
        self.frames_produced += 1

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

    def flush(self) -> list[TxFailure]:
        """One IORING_OP_SEND per VALID TX frame, submitted and waited for
        with one io_uring_enter (more only if the SQ is smaller)."""
        self.solo_frames.clear()
        tx = self.tx
        uring = self._uring
        failures: list[TxFailure] = []
        frames: list[tuple[int, int]] = []
        index = self._tx_tail
        for _ in range(tx.frame_nr):
            header = tx.raw_header(index)
            if header[0] != VALID:
                break
            frames.append((index, header[1]))
            index = tx.next_index(index)
        if not frames:
            return failures
        self._tx_tail = index
        results = self._send_results
        queued = 0
        for frame, length in frames:
            if not length:
                results[frame] = 0
                continue
            while not uring.prepare(sys_.IORING_OP_SEND, self._fd, self._base + tx.data_offset(frame), length, _SEND | frame):
                self._enter(queued)
                queued = 0
            queued += 1
        if queued:
            self._enter(queued)
        for _ in range(64):  # bounded: sends to the kernel complete inline
            if all(frame in results for frame, _length in frames):
                break
            self._enter(0, wait=1)
        for frame, length in frames:
            res = results.pop(frame, None)
            tx.set_status(frame, UNUSED)
            if res is None:
                failures.append(TxFailure([frame], OSError(errno.ETIMEDOUT, "the io_uring send did not complete")))
            elif res < 0:
                failures.append(TxFailure([frame], OSError(-res, os.strerror(-res))))
            elif res < length:
                failures.append(TxFailure([frame], OSError(errno.EMSGSIZE, f"short send: {res} of {length} bytes went out")))
        return failures

    def _enter(self, queued: int, wait: int | None = None) -> None:
        self.tx_syscalls += 1
        self._uring.submit(wait=queued if wait is None else wait)
        self._reap()

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
