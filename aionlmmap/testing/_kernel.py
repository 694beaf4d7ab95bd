"""The simulated kernel: sockets, message delivery (ring path and COPY
path), request processing, dumps with poll-driven flow control, and fault
injection. Facts: DESIGN.md section 1, probed on Linux 4.4.1.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..attributes import AttributeBuilder
from ..constants import (
    NETLINK_ROUTE,
    NL_MMAP_HDRLEN,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_MIN_TYPE,
    NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS,
)
from ..frames import COPY, NL_MMAP_HDR, RESERVED, SKIP, UNUSED, VALID
from ..message import NLMSGHDR, Message, encode_message, nlmsg_align
from ._socket import Queued, SimulatedSocket

__all__ = ["KernelError", "Request", "ReservedFrame", "SimulatedKernel"]

_INT = struct.Struct("=i")
_U32 = struct.Struct("=I")

Handler = Callable[["Request"], None]


class KernelError(Exception):
    """Raise from a request handler to answer with NLMSG_ERROR.

    ``extack_message``/``extack_offset`` become NLMSGERR_ATTR_MSG/OFFS when
    the socket turned NETLINK_EXT_ACK on."""

    def __init__(self, errno_value: int, extack_message: str | None = None, extack_offset: int | None = None) -> None:
        super().__init__(errno_value, extack_message)
        self.errno = errno_value
        self.extack_message = extack_message
        self.extack_offset = extack_offset


@attrs.define(eq=False)
class _Dump:
    """netlink_callback of a running dump."""

    seq: int
    portid: int
    pending: deque[bytes]
    error: int = 0
    min_alloc: int = 0
    interrupted: bool = False


@attrs.define(eq=False)
class Request:
    """One request message as a handler sees it."""

    kernel: SimulatedKernel
    sock: SimulatedSocket
    message: Message
    #: set by :meth:`dump`; the kernel starts it after the handler returns
    dump_messages: list[bytes] | None = None
    dump_min_alloc: int = 0
    dump_error: int = 0
    dump_interrupted: bool = False

    @property
    def is_dump(self) -> bool:
        return (self.message.flags & NLM_F_DUMP) == NLM_F_DUMP

    def encode(self, msg_type: int, payload: bytes, flags: int = 0) -> bytes:
        """A message answering this request (its seq, the requester's portid)."""
        return encode_message(msg_type, flags, self.message.seq, self.sock.portid, payload)

    def reply(self, msg_type: int, payload: bytes, flags: int = 0, *, ring: bool = False) -> bool:
        """Send a unicast reply. rtnetlink non-dump replies take the COPY
        path (``ring=False``, c.3.8); generic netlink unicast replies are
        allocated for the destination and take a frame (``ring=True``)."""
        data = self.encode(msg_type, payload, flags)
        if ring:
            return self.kernel._deliver_allocated(self.sock, data, len(data))
        return self.kernel._deliver_copy(self.sock, data, unicast=True)

    def dump(self, messages: Iterable[tuple[int, bytes]], *, min_alloc: int = 0, error: int = 0, interrupted: bool = False) -> None:
        """Answer with a dump of ``(type, payload)`` messages (NLM_F_MULTI)."""
        flags = NLM_F_MULTI | (NLM_F_DUMP_INTR if interrupted else 0)
        self.dump_messages = [self.encode(t, p, flags) for t, p in messages]
        self.dump_min_alloc = min_alloc
        self.dump_error = error
        self.dump_interrupted = interrupted


@attrs.define(eq=False)
class ReservedFrame:
    """A frame the kernel took and is still building (RESERVED, visible to
    user space, like nflog's entry until its flush timer fires)."""

    kernel: SimulatedKernel
    sock: SimulatedSocket
    index: int
    done: bool = False

    def deliver(self, data: bytes, group: int = 0, pid: int = 0) -> None:
        """Finish it: data at +24, then VALID (status last)."""
        frames = self.sock.rx
        assert frames is not None
        self._check()
        start = frames.data_offset(self.index)
        frames.buffer[start : start + len(data)] = data
        NL_MMAP_HDR.pack_into(frames.buffer, frames.offset(self.index), RESERVED, len(data), group, pid, 0, 0)
        frames.set_status(self.index, VALID)
        self._finish()

    def drop(self) -> None:
        """Free it undelivered (a socket filter dropped it): VALID, nm_len 0 (c.6)."""
        frames = self.sock.rx
        assert frames is not None
        self._check()
        NL_MMAP_HDR.pack_into(frames.buffer, frames.offset(self.index), RESERVED, 0, 0, 0, 0, 0)
        frames.set_status(self.index, VALID)
        self._finish()

    def _check(self) -> None:
        if self.done:
            raise RuntimeError("this reserved frame was already delivered or dropped")

    def _finish(self) -> None:
        self.done = True
        self.sock.update_readiness()


class SimulatedKernel:
    """A pre-4.6 Linux netlink core in user space, for testing code that uses
    the kernel ring backend on a kernel that has no ring.

    >>> kernel = SimulatedKernel()
    >>> async with kernel.open(NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:
    ...     assert ring.backend == "kernel"
    ...     links = await ring.dump_all(Message(RTM_GETLINK, NLM_F_DUMP, payload=bytes(16)))
    ...     kernel.rtnl.add_link("dummy0")          # a notification, COPY path

    What it implements (DESIGN.md section 1): setsockopt validation, EBUSY
    and EPERM, the mmap length/offset rules, the ring path (VALID frames,
    stepping past SKIP) and the COPY path (receive queue, rcvbuf,
    congestion, no SKIP stepping), RESERVED frames, len-0 frames, overrun,
    dump flow control inside poll(), the 4.4.1 dump data offset
    (``trimmed_dump_offset=True``), TX consumption with its EINVAL case.
    Faults: :meth:`fail_next` (any errno into any syscall, EINTR
    included), :meth:`inject_overrun`, :meth:`deliver` (raw, truncated or
    malformed datagrams from any sender), :meth:`fail_requests` (errors with
    extended ack) and ``rtnl.interrupt_dumps`` (NLM_F_DUMP_INTR).

    Args:
        release: the kernel release reported in error messages.
        has_ring: False simulates Linux >= 4.6 (setsockopt gives ENOPROTOOPT).
        cap_net_admin: False gives EPERM for rings.
        trimmed_dump_offset: dump chunks at frame_size - alloc_size (4.4.1).
        ext_ack_supported: NETLINK_EXT_ACK/GET_STRICT_CHK exist (4.4 had neither).
    """

    def __init__(
        self,
        *,
        release: str = "4.4.1-simulated",
        has_ring: bool = True,
        cap_net_admin: bool = True,
        page_size: int = 4096,
        trimmed_dump_offset: bool = False,
        ext_ack_supported: bool = True,
        default_rcvbuf: int = 212992,
    ) -> None:
        from ._rtnl import RtnlModel

        self.release = release
        self.has_ring = has_ring
        self.cap_net_admin = cap_net_admin
        self.page_size = page_size
        self.trimmed_dump_offset = trimmed_dump_offset
        self.ext_ack_supported = ext_ack_supported
        self.default_rcvbuf = default_rcvbuf
        #: NLMSG_GOODSIZE (3776 with 4 KiB pages)
        self.goodsize = min(page_size, 8192) - 320
        self._sockets: dict[int, SimulatedSocket] = {}
        self._portids = itertools.count(os.getpid() & 0x3FFFFFFF or 1)
        self._handlers: dict[tuple[int, int], Handler] = {}
        self._request_faults: dict[tuple[int, int], deque[KernelError]] = {}
        self.rtnl = RtnlModel(self)

    # -- sockets -----------------------------------------------------------------------
    def socket(self, protocol: int = NETLINK_ROUTE) -> SimulatedSocket:
        """A new unbound simulated socket (``bind()`` assigns a portid)."""
        return SimulatedSocket(self, protocol)

    def open(
        self,
        protocol: int = NETLINK_ROUTE,
        *,
        groups: Iterable[int] = (),
        rx: Any = None,
        tx: Any = None,
        rcvbuf: int | None = None,
        ext_ack: bool = True,
        strict_check: bool = True,
        no_enobufs: bool = False,
        accept_foreign: bool = False,
        skip_is_safe: bool = False,
        detect_dump_offset: bool = True,
        backlog_limit: int = 16 * 1024 * 1024,
    ) -> Any:
        """A :class:`~aionlmmap.Ring` on a simulated socket with the kernel
        backend: the same object ``aionlmmap.open()`` returns."""
        from .. import _sys
        from ..backends.kernel import KernelBackend
        from ..ring import DEFAULT_RX, DEFAULT_TX, Ring

        rx_config = rx or DEFAULT_RX
        tx_config = tx or DEFAULT_TX
        sock = self.socket(protocol)
        try:
            options = _sys.configure_socket(
                sock,  # type: ignore[arg-type]
                groups=groups,
                ext_ack=ext_ack,
                strict_check=strict_check,
                no_enobufs=no_enobufs,
                pktinfo=True,
                rcvbuf=rcvbuf,
            )
            backend = KernelBackend(sock, rx_config, tx_config, skip_is_safe=skip_is_safe, detect_dump_offset=detect_dump_offset)
            return Ring(backend, sock, protocol=protocol, accept_foreign=accept_foreign, backlog_limit=backlog_limit, options=options)
        except BaseException:
            sock.close()
            raise

    def sockets(self) -> list[SimulatedSocket]:
        return list(self._sockets.values())

    def _assign_portid(self, sock: SimulatedSocket, wanted: int) -> int:
        if wanted:
            if wanted in self._sockets:
                raise OSError(errno.EADDRINUSE, f"portid {wanted} is in use")
            portid = wanted
        else:
            portid = next(self._portids)
            while portid in self._sockets:
                portid = next(self._portids)
        self._sockets[portid] = sock
        return portid

    def _forget(self, sock: SimulatedSocket) -> None:
        if self._sockets.get(sock.portid) is sock:
            del self._sockets[sock.portid]

    # -- handlers and faults --------------------------------------------------------------
    def register(self, protocol: int, msg_type: int, handler: Handler) -> None:
        """Answer requests of ``msg_type`` on ``protocol`` sockets with
        ``handler(request)``; it may reply, dump, notify or raise
        :class:`KernelError`. Returning normally means success (ACKed when
        NLM_F_ACK asks)."""
        self._handlers[(protocol, msg_type)] = handler

    def fail_requests(
        self,
        protocol: int,
        msg_type: int,
        errno_value: int,
        *,
        extack_message: str | None = None,
        extack_offset: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests of ``msg_type`` with an error
        (and extended ack where the socket asked for it)."""
        queue = self._request_faults.setdefault((protocol, msg_type), deque())
        for _ in range(times):
            queue.append(KernelError(errno_value, extack_message, extack_offset))

    def fail_next(self, sock: SimulatedSocket, call: str, errno_value: int, times: int = 1) -> None:
        """Make the next ``times`` calls of one syscall on ``sock`` fail with
        ``errno_value``. ``call`` is one of set_ring, mmap, send_frames,
        receive, poll, take_error; EINTR raises InterruptedError."""
        if call not in ("set_ring", "mmap", "send_frames", "receive", "poll", "take_error"):
            raise ValueError(f"unknown syscall {call!r}")
        sock.faults.setdefault(call, deque()).extend([errno_value] * times)

    def inject_overrun(self, sock: SimulatedSocket) -> None:
        """netlink_overrun() on ``sock``: ENOBUFS reported once, socket congested."""
        sock.overrun()
        sock.update_readiness()

    def deliver(self, sock: SimulatedSocket, data: bytes, *, ring: bool = True, group: int = 0, pid: int = 0, uid: int = 0, gid: int = 0) -> bool:
        """Put raw bytes on ``sock`` as one datagram: in a frame (ring path)
        or queued as COPY. Any bytes: truncated headers, lengths past the
        end, another sender's portid (``pid``). Returns False if dropped."""
        if ring:
            delivered = self._deliver_allocated(sock, data, len(data), group=group, pid=pid, uid=uid, gid=gid)
        else:
            delivered = self._deliver_copy(sock, data, group=group, pid=pid, uid=uid, gid=gid, unicast=not group)
        return delivered

    def reserve(self, sock: SimulatedSocket) -> ReservedFrame | None:
        """Take the next frame on the ring path and leave it RESERVED (the
        kernel still building it); None (and an overrun) if the ring is full."""
        frames = self._rx_frames(sock)
        if frames is None:
            raise RuntimeError("the socket has no RX ring")
        frames.forward_past_skip()
        index = frames.head
        if frames.status(index) != UNUSED:
            sock.overrun()
            sock.update_readiness()
            return None
        frames.set_status(index, RESERVED)
        frames.head = frames.next_index(index)
        sock.update_readiness()
        return ReservedFrame(self, sock, index)

    # -- delivery ---------------------------------------------------------------------
    @staticmethod
    def _rx_frames(sock: SimulatedSocket) -> Any:
        return sock._ring_frames(sock.rx_ring) if sock.rx_ring is not None else None

    def _deliver_allocated(
        self,
        sock: SimulatedSocket,
        data: bytes,
        alloc_size: int,
        *,
        group: int = 0,
        pid: int = 0,
        uid: int = 0,
        gid: int = 0,
        data_offset: int = NL_MMAP_HDRLEN,
    ) -> bool:
        """An skb netlink_alloc_skb() made for this socket: a frame when the
        allocation fits one (ring path: steps past SKIP; a busy head is an
        overrun), else an ordinary skb on the COPY path."""
        frames = self._rx_frames(sock)
        if frames is None:
            return self._deliver_copy(sock, data, group=group, pid=pid, uid=uid, gid=gid, unicast=True)
        if alloc_size > frames.config.data_size:
            return self._deliver_copy(sock, data, group=group, pid=pid, uid=uid, gid=gid, unicast=True)
        frames.forward_past_skip()
        index = frames.head
        if frames.status(index) != UNUSED:
            sock.overrun()
            sock.update_readiness()
            return False
        start = frames.offset(index) + data_offset
        frames.buffer[start : start + len(data)] = data
        NL_MMAP_HDR.pack_into(frames.buffer, frames.offset(index), RESERVED, len(data), group, pid, uid, gid)
        frames.set_status(index, VALID)  # status last
        frames.head = frames.next_index(index)
        sock.update_readiness()
        return True

    def _deliver_copy(
        self, sock: SimulatedSocket, data: bytes, *, group: int = 0, pid: int = 0, uid: int = 0, gid: int = 0, unicast: bool = False
    ) -> bool:
        """An ordinary skb: charged to SO_RCVBUF, refused while congested
        (netlink_attachskb / netlink_broadcast_deliver), then on a ring
        socket it needs the head frame UNUSED, with no stepping past SKIP
        (netlink_ring_set_copied), to mark it COPY."""
        if sock.rmem > sock.rcvbuf or sock.congested:
            sock.overrun()
            sock.update_readiness()
            return False
        frames = self._rx_frames(sock)
        if frames is not None:
            index = frames.head
            if frames.status(index) != UNUSED:
                sock.overrun()
                sock.update_readiness()
                return False
            NL_MMAP_HDR.pack_into(frames.buffer, frames.offset(index), RESERVED, len(data), group, pid, uid, gid)
            frames.set_status(index, COPY)
            frames.head = frames.next_index(index)
        queued = Queued(data, group, pid)
        sock.queue.append(queued)
        sock.rmem += queued.truesize
        sock.update_readiness()
        return True

    def multicast(self, protocol: int, group: int, data: bytes, *, pid: int = 0, exclude: SimulatedSocket | None = None) -> int:
        """netlink_broadcast(): every member of ``group`` gets a COPY-path
        datagram (nm_group = the group number). Returns how many got it."""
        delivered = 0
        for sock in list(self._sockets.values()):
            if sock.protocol == protocol and group in sock.groups and sock is not exclude and not sock.closed:
                delivered += self._deliver_copy(sock, data, group=group, pid=pid)
        return delivered

    # -- TX and request processing ---------------------------------------------------------
    def _consume_tx(self, sock: SimulatedSocket) -> int:
        """netlink_mmap_sendmsg(): consecutive VALID TX frames from the head,
        one skb per frame; EINVAL (frame left VALID, head on it, the count
        lost) for nm_len > frame_size - 24; nm_len 0 consumed silently."""
        if sock.tx_ring is None:
            return 0  # an empty datagram to the kernel: nothing to do
        frames = sock._ring_frames(sock.tx_ring)
        max_len = frames.config.data_size
        total = 0
        for _ in range(frames.frame_nr):
            index = frames.head
            status, length = struct.unpack_from("=II", frames.buffer, frames.offset(index))
            if status != VALID:
                break
            if length > max_len:
                raise OSError(errno.EINVAL, f"TX frame {index}: nm_len {length} > {max_len}")
            start = frames.data_offset(index)
            data = bytes(frames.buffer[start : start + length])
            frames.set_status(index, UNUSED)
            frames.head = frames.next_index(index)
            total += length
            self._receive(sock, data)
        return total

    def _receive(self, sock: SimulatedSocket, data: bytes) -> None:
        """netlink_rcv_skb(): every nlmsg in order, each answered on its own."""
        offset = 0
        size = len(data)
        while size - offset >= NLMSG_HDRLEN:
            length, msg_type, flags, seq, pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSG_HDRLEN or length > size - offset:
                return  # the kernel stops at a bad length, silently
            message = Message(msg_type, flags, seq, pid, data[offset + NLMSG_HDRLEN : offset + length])
            error: KernelError | None = None
            started_dump = False
            if flags & NLM_F_REQUEST and msg_type >= NLMSG_MIN_TYPE:
                try:
                    started_dump = self._dispatch(sock, message)
                except KernelError as exc:
                    error = exc
            if error is not None or (flags & NLM_F_ACK and not started_dump):
                self._ack(sock, data[offset : offset + length], message, error)
            offset += nlmsg_align(length)

    def _dispatch(self, sock: SimulatedSocket, message: Message) -> bool:
        key = (sock.protocol, message.type)
        faults = self._request_faults.get(key)
        if faults:
            raise faults.popleft()
        handler = self._handlers.get(key)
        if handler is None:
            raise KernelError(errno.EOPNOTSUPP)
        request = Request(self, sock, message)
        handler(request)
        if request.dump_messages is None:
            return False
        if sock.dump is not None:
            raise KernelError(errno.EBUSY, "a dump is already running on this socket")
        sock.dump = _Dump(message.seq, sock.portid, deque(request.dump_messages), request.dump_error, request.dump_min_alloc, request.dump_interrupted)
        self._dump_step(sock)  # netlink_dump_start runs the first chunk now
        return True

    def _ack(self, sock: SimulatedSocket, request_bytes: bytes, message: Message, error: KernelError | None) -> None:
        """netlink_ack(): NLMSG_ERROR with the request's header (and payload on
        error unless NETLINK_CAP_ACK), extack TLVs with NETLINK_EXT_ACK. It is
        allocated for the requester, so it takes a frame (c.3.10); a full
        ring loses it with ENOBUFS."""
        code = -error.errno if error else 0
        flags = 0
        if code == 0 or sock.cap_ack:
            echoed = request_bytes[:NLMSG_HDRLEN]
            flags |= NLM_F_CAPPED
        else:
            echoed = request_bytes
        body = _INT.pack(code) + echoed + bytes(nlmsg_align(len(echoed)) - len(echoed))
        if error is not None and sock.ext_ack and (error.extack_message or error.extack_offset is not None):
            tlvs = AttributeBuilder()
            if error.extack_message:
                tlvs.add(NLMSGERR_ATTR_MSG, error.extack_message.encode() + b"\0")
            if error.extack_offset is not None:
                tlvs.add_u32(NLMSGERR_ATTR_OFFS, error.extack_offset)
            body += tlvs.build()
            flags |= NLM_F_ACK_TLVS
        data = encode_message(NLMSG_ERROR, flags, message.seq, sock.portid, body)
        self._deliver_allocated(sock, data, len(data))

    # -- dumps -----------------------------------------------------------------------------
    def _dump_alloc_size(self, sock: SimulatedSocket) -> int:
        """netlink_dump(): max(min_dump_alloc, NLMSG_GOODSIZE), or the last
        large recvmsg buffer (max_recvmsg_len) when that is bigger."""
        minimum = max(sock.dump.min_alloc if sock.dump else 0, self.goodsize)
        return max(minimum, sock.max_recvmsg_len)

    def _dump_space(self, sock: SimulatedSocket) -> bool:
        """netlink_dump_space(): the head frame and the frame
        head + (frame_nr - 1) / 2 (wrapping by frame_nr - 1, the kernel's
        off-by-one) are both UNUSED. No stepping past SKIP: a SKIP head
        stalls the dump (c.10)."""
        frames = self._rx_frames(sock)
        if frames is None:
            return True
        head = frames.head
        if frames.status(head) != UNUSED:
            return False
        frame_max = frames.frame_nr - 1
        ahead = head + frame_max // 2
        if ahead > frame_max:
            ahead -= frame_max
        return frames.status(ahead) == UNUSED

    def _dump_step(self, sock: SimulatedSocket) -> int:
        """netlink_dump(): one chunk (as many messages as fit the
        allocation), or NLMSG_DONE alone in its own skb at the end."""
        dump: _Dump | None = sock.dump
        if dump is None:
            return 0
        alloc_size = self._dump_alloc_size(sock)
        chunk = bytearray()
        pending = dump.pending
        while pending and len(chunk) + len(pending[0]) <= alloc_size:
            chunk += pending.popleft()
        if not chunk and pending:
            chunk += pending.popleft()  # one message larger than the allocation
        done = not chunk
        if done:
            flags = NLM_F_MULTI | (NLM_F_DUMP_INTR if dump.interrupted else 0)
            chunk += encode_message(NLMSG_DONE, flags, dump.seq, dump.portid, _INT.pack(-dump.error if dump.error > 0 else dump.error))
        offset = NL_MMAP_HDRLEN
        frames = self._rx_frames(sock)
        if self.trimmed_dump_offset and frames is not None and alloc_size <= frames.config.data_size:
            # 4.4.1: skb_reserve(skb, skb_tailroom(skb) - alloc_size) on ring skbs too.
            offset = frames.config.frame_size - alloc_size
        ring_path = frames is not None and alloc_size <= frames.config.data_size
        delivered = self._deliver_allocated(sock, bytes(chunk), alloc_size, data_offset=offset)
        if not delivered and ring_path:
            # No frame: the chunk is not built; the dump retries later. (A
            # COPY-path drop loses the data, as on the real kernel.)
            if not done:
                dump.pending.extendleft(_split_back(bytes(chunk)))
            return -errno.ENOBUFS
        if done:
            sock.dump = None
        return 0


def _split_back(chunk: bytes) -> list[bytes]:
    """The messages of a chunk, reversed (for deque.extendleft)."""
    out: list[bytes] = []
    offset = 0
    while offset + NLMSG_HDRLEN <= len(chunk):
        length = _U32.unpack_from(chunk, offset)[0]
        aligned = nlmsg_align(length)
        out.append(chunk[offset : offset + aligned])
        offset += aligned
    out.reverse()
    return out


# Statuses re-exported for tests that check frames by hand.
STATUS_LETTERS = {UNUSED: "U", RESERVED: "R", VALID: "V", COPY: "C", SKIP: "S"}
