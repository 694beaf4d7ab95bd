"""The emulated ring: the kernel's frame layout in anonymous memory, filled
from the socket by ``recvmsg_into``.

Linux >= 4.6 has no mmap ring, but the ring protocol is still a good shape
for an asyncio reader: frames are preallocated, messages are parsed in
place, and a full ring pushes back on the kernel exactly as a real one does
(the socket's receive buffer absorbs, then overruns with ENOBUFS).

What this backend does in the kernel's place (``netlink_forward_ring`` and
friends in the pre-4.6 ``af_netlink.c``):
- RX: step the producer head past SKIP frames; if the head frame is UNUSED,
  ``recvmsg_into`` the next datagram straight into its data area with a spill
  buffer behind it; a datagram that does not fit becomes a COPY frame whose
  bytes are kept aside (never truncated silently); fill nm_len, nm_group
  (NETLINK_PKTINFO), nm_pid (the sender address), nm_uid/nm_gid
  (SCM_CREDENTIALS, when asked for). A busy head frame means the ring is full:
  stop reading.
- TX: every VALID frame from the TX tail goes out in one ``sendmsg`` whose
  iovec points at the frames (no copy); the kernel's ``netlink_rcv_skb``
  handles each nlmsg of the datagram in order. Split only where the datagram
  would pass the socket's send buffer (``netlink_sendmsg`` rejects
  len > sk_sndbuf - 32 with EMSGSIZE) or the iovec limit.
"""

from __future__ import annotations

import errno
import mmap
import socket
import struct
from collections import deque

from .._sys import PKTINFO, UCRED
from ..constants import NETLINK_PKTINFO, SOL_NETLINK
from ..frames import COPY, NL_MMAP_HDR, SKIP, UNUSED, VALID, FrameRing, RingConfig
from . import TxFailure, _recvmmsg, tx_datagrams
from ._recvmmsg import _PKTINFO_SPACE, BatchReceiver

__all__ = ["EmulatedBackend"]

#: room behind a frame for a datagram larger than the frame (becomes COPY)
SPILL_SIZE = 256 * 1024
#: datagrams per recvmmsg(2) call at most
RECVMMSG_BATCH = 64
_SCM_CREDENTIALS = 2
_ANCILLARY_SIZE = socket.CMSG_SPACE(PKTINFO.size) + socket.CMSG_SPACE(UCRED.size)
_unpack_pktinfo = PKTINFO.unpack_from
_pack_header_into = NL_MMAP_HDR.pack_into
_unpack_status = struct.Struct("=I").unpack_from
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: the enum's __and__ is slow per datagram


class EmulatedBackend:
    name = "emulated"
    skip_is_safe = True

    def __init__(self, sock: socket.socket, rx_config: RingConfig, tx_config: RingConfig, *, batched: bool = True) -> None:
        rx_config.validate()
        tx_config.validate()
        self._sock = sock
        self.rx_config = rx_config
        self.tx_config = tx_config
        self._memory = mmap.mmap(-1, rx_config.ring_size + tx_config.ring_size)
        view = memoryview(self._memory)
        self._view = view
        self.rx = FrameRing(self._memory, rx_config, 0)
        self.tx = FrameRing(self._memory, tx_config, rx_config.ring_size)
        rx_data = rx_config.data_size
        self._rx_data = [view[self.rx.data_offset(i) : self.rx.data_offset(i) + rx_data] for i in range(rx_config.frame_nr)]
        self._rx_offsets = [self.rx.offset(i) for i in range(rx_config.frame_nr)]
        self.rx_views: list[memoryview] | None = self._rx_data
        # The status words of RX frames as u32 items, when frames are evenly
        # spaced (block size a multiple of the frame size), for _free_frames.
        self._status_words: memoryview | None = None
        self._status_stride = rx_config.frame_size // 4
        if rx_config.block_size % rx_config.frame_size == 0:
            self._status_words = view[: rx_config.ring_size].cast("I")
        self._tx_data = [view[self.tx.data_offset(i) : self.tx.data_offset(i) + tx_config.data_size] for i in range(tx_config.frame_nr)]
        self._spill = bytearray(SPILL_SIZE)
        self._spill_view = memoryview(self._spill)
        self._copied: deque[tuple[int, bytes]] = deque()
        self._tx_tail = 0
        self._batch: BatchReceiver | None = None
        if batched and _recvmmsg.available():
            self._batch = BatchReceiver(
                sock.fileno(), self._memory, [self.rx.data_offset(i) for i in range(rx_config.frame_nr)],
                rx_data, SPILL_SIZE, min(rx_config.frame_nr, RECVMMSG_BATCH),
            )
        self.solo_frames: set[int] = set()
        self.overruns = 0
        #: RX frames produced so far, and the counts at which messages were
        #: lost (see fill): the ring reports each overrun exactly there.
        self.frames_produced = 0
        self.overrun_marks: deque[int] = deque()
        self._overrun_armed = False
        self.truncated = 0
        self.tx_syscalls = 0
        self.rx_syscalls = 0
        self._closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    # -- RX ------------------------------------------------------------------
    def fill(self) -> bool:
        if self._batch is not None:
            return self._fill_batched(self._batch)
        return self._fill_one_by_one()

    def _free_frames(self, limit: int) -> list[int]:
        """UNUSED frames from the producer head on, stepping past SKIP
        (netlink_forward_ring), up to the first busy frame."""
        rx = self.rx
        frame_nr = rx.frame_nr
        index = rx.head
        words = self._status_words
        if words is not None:
            # Frames evenly spaced: every status word from the head on in
            # one strided read; the usual answer is "all UNUSED".
            stride = self._status_stride
            end = min(frame_nr, index + limit)
            if not any(words[index * stride : end * stride : stride]):
                return list(range(index, end))
        memory = self._memory
        offsets = self._rx_offsets
        frames: list[int] = []
        for _ in range(frame_nr):
            status = _unpack_status(memory, offsets[index])[0]
            if status == UNUSED:
                frames.append(index)
                if len(frames) == limit:
                    break
            elif status != SKIP:
                break
            index += 1
            if index == frame_nr:
                index = 0
        return frames

    def _fill_batched(self, receiver: BatchReceiver) -> bool:
        rx = self.rx
        data_size = self.rx_config.data_size
        write_header = _pack_header_into
        memory = self._memory
        offsets = self._rx_offsets
        for _ in range(rx.frame_nr + 8):  # bounded: each round fills frames or returns
            targets = self._free_frames(receiver.batch)
            if not targets:
                if self._overrun_armed:
                    self._probe_queue()
                return True
            try:
                self.rx_syscalls += 1
                received = receiver.receive(targets)
            except BlockingIOError:
                if self._overrun_armed:
                    self._mark_overrun()
                return False
            except OSError as exc:
                self._receive_failed(exc)
                continue
            # The targets are the frames the ring path would pick, in order
            # (SKIP frames stepped over), so each header is written in place
            # in one store; this thread is also the only reader.
            slot = 0
            for index, ((control_length, flags, nbytes), (sender,), (_first_length, level, kind, group)) in zip(targets, receiver.results(received)):
                if level == SOL_NETLINK and kind == NETLINK_PKTINFO and control_length <= _PKTINFO_SPACE and nbytes <= data_size and not flags & _MSG_TRUNC:
                    write_header(memory, offsets[index], VALID, nbytes, group, sender, 0, 0)
                else:
                    self._produce_unusual(receiver, slot, index, control_length, flags, nbytes, sender)
                slot += 1
            if received:
                rx.head = rx.next_index(targets[received - 1])
                self.frames_produced += received
            if received < len(targets):
                # recvmmsg stopped early: the receive queue ran empty.
                if self._overrun_armed:
                    self._mark_overrun()
                return False
        if self._overrun_armed:
            self._probe_queue()
        rx.forward_past_skip()
        return rx.status(rx.head) != UNUSED

    def _produce_unusual(self, receiver: BatchReceiver, slot: int, index: int, control_length: int, flags: int, nbytes: int, sender: int) -> None:
        """The header of a datagram that is not a plain frame's worth: more
        control data than the group (credentials), larger than a frame
        (COPY), or larger than frame and spill (truncated)."""
        group, credentials = receiver.slot_metadata(slot, control_length)
        status = VALID
        if flags & _MSG_TRUNC:
            # Larger than frame + spill: counted, and the frame goes out as
            # a VALID frame of length 0, which the reader releases unread
            # (what the kernel does with a ring skb it could not deliver).
            self.truncated += 1
            nbytes = 0
        elif nbytes > self.rx_config.data_size:
            self._copied.append((index, bytes(self._rx_data[index]) + receiver.spill_bytes(slot, nbytes - self.rx_config.data_size)))
            status = COPY
        _pack_header_into(self._memory, self._rx_offsets[index], status, nbytes, group, sender, credentials >> 32, credentials & 0xFFFFFFFF)

    def _fill_one_by_one(self) -> bool:
        rx = self.rx
        recvmsg_into = self._sock.recvmsg_into
        spill = self._spill_view
        data_size = self.rx_config.data_size
        frame_nr = rx.frame_nr
        rx_data = self._rx_data
        # Bounded: at most one lap of the ring per call (plus overrun reports).
        for _ in range(frame_nr + 8):
            rx.forward_past_skip()
            index = rx.head
            if rx.status(index) != UNUSED:
                if self._overrun_armed:
                    self._probe_queue()
                return True
            try:
                self.rx_syscalls += 1
                nbytes, ancdata, flags, address = recvmsg_into([rx_data[index], spill], _ANCILLARY_SIZE)
            except BlockingIOError:
                if self._overrun_armed:
                    self._mark_overrun()
                return False
            except OSError as exc:
                self._receive_failed(exc)
                continue
            if flags & _MSG_TRUNC:
                # Larger than frame + spill: counted and dropped, never
                # delivered cut short.
                self.truncated += 1
                continue
            group = uid = gid = 0
            for level, kind, data in ancdata:
                if level == SOL_NETLINK and kind == NETLINK_PKTINFO:
                    group = _unpack_pktinfo(data)[0]
                elif level == socket.SOL_SOCKET and kind == _SCM_CREDENTIALS:
                    _pid, uid, gid = UCRED.unpack_from(data)
            sender = address[0] if address else 0
            if nbytes > data_size:
                self._copied.append((index, bytes(rx_data[index]) + bytes(spill[: nbytes - data_size])))
                rx.produce(COPY, nbytes, group, sender, uid, gid)
            else:
                rx.produce(VALID, nbytes, group, sender, uid, gid)
            self.frames_produced += 1
        if self._overrun_armed:
            self._probe_queue()
        return rx.status(rx.head) != UNUSED

    def _receive_failed(self, exc: OSError) -> None:
        """ENOBUFS and EINTR are part of the protocol; anything else is raised."""
        if exc.errno == errno.ENOBUFS:
            # The socket dropped messages. The kernel reports it once
            # (sk_err) and sets NETLINK_S_CONGESTED, which drops every new
            # message until the receive queue has been read empty
            # (netlink_rcv_wake clears it). So what is queued now came
            # before the loss, and what we read after the queue ran empty
            # came after it: the loss sits exactly there (_mark_overrun).
            self.overruns += 1
            self._overrun_armed = True
        elif exc.errno != errno.EINTR:
            raise exc

    def _probe_queue(self) -> None:
        """An overrun waits to be placed and the ring has no free frame:
        find out whether the last read emptied the socket queue (a peek).
        Waiting for a read that comes back empty would place it late, or
        never: a read that exactly fills the ring leaves the queue empty
        and the socket not readable, so nothing would wake the reader."""
        try:
            self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            self._mark_overrun()  # empty: what arrives from now on came after the loss
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                # A new loss: NETLINK_S_CONGESTED was cleared, which only a
                # read that empties the queue does, so the last one ended here.
                self._mark_overrun()
                self._receive_failed(exc)
            elif exc.errno != errno.EINTR:
                raise

    def _mark_overrun(self) -> None:
        self._overrun_armed = False
        self.overrun_marks.append(self.frames_produced)

    def take_overrun(self) -> bool:
        # Overruns are reported in place through overrun_marks instead.
        return False

    def frame_data(self, index: int, length: int) -> memoryview:
        return self._rx_data[index][:length]

    def read_copy(self, index: int, length: int) -> bytes:
        while self._copied:
            copied_index, data = self._copied.popleft()
            if copied_index == index:
                return data
        raise RuntimeError(f"COPY frame {index} has no datagram queued (ring walked out of order)")

    # -- TX ------------------------------------------------------------------
    def tx_data(self, index: int) -> memoryview:
        return self._tx_data[index]

    def flush(self) -> list[TxFailure]:
        """Each datagram of the VALID TX frames (:func:`tx_datagrams`) in one
        ``sendmsg`` of the frames' bytes."""
        tx = self.tx
        failures: list[TxFailure] = []
        limit = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32
        datagrams, self._tx_tail = tx_datagrams(tx, self._tx_tail, self.solo_frames, limit)
        for datagram in datagrams:
            buffers = [self._tx_data[index][:length] for index, length in datagram if length]
            error: OSError | None = None
            if buffers:
                try:
                    self.tx_syscalls += 1
                    self._sock.sendmsg(buffers)
                except OSError as exc:
                    error = exc
            frames = [index for index, _length in datagram]
            for frame in frames:
                tx.set_status(frame, UNUSED)
            if error is not None:
                failures.append(TxFailure(frames, error))
        return failures

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        for view in self._rx_data:
            view.release()
        for view in self._tx_data:
            view.release()
        if self._status_words is not None:
            self._status_words.release()
        self._view.release()
        try:
            self._memory.close()
        except BufferError:
            # A user still holds a view into frame memory; the anonymous
            # mapping goes away when that view is garbage-collected.
            pass

