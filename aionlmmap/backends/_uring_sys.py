"""io_uring from Python: the three syscalls through ctypes, the SQ/CQ rings
and a provided-buffer ring through mmap. Just what the ``uring`` backend
needs (multishot RECVMSG into a buffer ring, SEND, an eventfd).

Layouts and constants are those of ``include/uapi/linux/io_uring.h``:
``struct io_uring_params`` (120 bytes, with ``io_sqring_offsets`` and
``io_cqring_offsets`` of 40 bytes each), 64-byte SQEs, 16-byte CQEs,
``struct io_uring_buf`` (16 bytes; the ring's tail is the u16 at offset 14
of entry 0), ``struct io_uring_buf_reg`` (40 bytes) and
``struct io_uring_recvmsg_out`` (16 bytes).

Memory ordering: the kernel reads our SQ tail and buffer-ring tail and
writes the CQ tail; we store entries before the tail that publishes them.
CPython's stores are plain stores in program order, which x86-64's memory
model (TSO) keeps in order for the kernel to see. Other architectures would
need barriers that Python cannot express, so :func:`probe` refuses them.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct
from typing import Any

from .. import _sys

__all__ = ["Uring", "UringUnavailable", "probe"]

# -- syscalls (the same numbers on every architecture with the generic table, and x86-64)
_SYS_IO_URING_SETUP = 425
_SYS_IO_URING_ENTER = 426
_SYS_IO_URING_REGISTER = 427

# -- setup flags and features
IORING_SETUP_CQSIZE = 1 << 3
IORING_SETUP_SUBMIT_ALL = 1 << 7
IORING_SETUP_COOP_TASKRUN = 1 << 8  #: Linux 5.19: no IPI to run completion work
IORING_SETUP_TASKRUN_FLAG = 1 << 9
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_FEAT_NODROP = 1 << 1
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000
IORING_ENTER_GETEVENTS = 1 << 0

# -- opcodes, SQE and CQE flags
IORING_OP_NOP = 0
IORING_OP_SENDMSG = 9
IORING_OP_RECVMSG = 10
IORING_OP_SEND = 26
IORING_OP_RECV = 27
IOSQE_BUFFER_SELECT = 1 << 5
IORING_RECV_MULTISHOT = 1 << 1  #: in sqe->ioprio of RECV/RECVMSG (Linux 6.0)
IORING_CQE_F_BUFFER = 1 << 0
IORING_CQE_F_MORE = 1 << 1
IORING_CQE_BUFFER_SHIFT = 16

# -- io_uring_register opcodes
IORING_REGISTER_EVENTFD = 4
IORING_UNREGISTER_EVENTFD = 5
IORING_REGISTER_PBUF_RING = 22  #: Linux 5.19
IORING_UNREGISTER_PBUF_RING = 23

#: struct io_uring_params: 10 u32, then sq_off {head, tail, ring_mask,
#: ring_entries, flags, dropped, array, resv1: u32; user_addr: u64} and
#: cq_off {head, tail, ring_mask, ring_entries, overflow, cqes, flags,
#: resv1: u32; user_addr: u64}
_PARAMS = struct.Struct("=10I" + "7IIQ" + "8IQ")
#: struct io_uring_sqe, the fields used: opcode, flags, ioprio, fd, off,
#: addr, len, op_flags, user_data, buf_group, personality, file_index, addr3, pad
_SQE = struct.Struct("=BBHiQQIIQHHiQQ")
_CQE = struct.Struct("=QiI")
_CQE_ITER = _CQE.iter_unpack
_BUF = struct.Struct("=QIHH")  #: struct io_uring_buf {u64 addr; u32 len; u16 bid; u16 resv}
#: its first three fields: entry 0's resv is the ring's tail, never written here
_BUF_HEAD = struct.Struct("=QIH")
_BUF_REG = struct.Struct("=QIHH3Q")  #: struct io_uring_buf_reg
RECVMSG_OUT = struct.Struct("=IIII")  #: namelen, controllen, payloadlen, flags
_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")
assert _PARAMS.size == 120 and _SQE.size == 64 and _CQE.size == 16 and _BUF_REG.size == 40

_syscall = _sys.libc.syscall
_syscall.restype = ctypes.c_long


class UringUnavailable(OSError):
    """io_uring cannot serve the backend here; ``strerror`` says why."""


def _call(number: int, *args: Any) -> int:
    for _ in range(8):  # EINTR: bounded retries
        result = int(_syscall(ctypes.c_long(number), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))
        if result >= 0:
            return result
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))
    raise OSError(errno.EINTR, os.strerror(errno.EINTR))


def _address(memory: mmap.mmap) -> tuple[int, Any]:
    """The address of an mmap's first byte, and the ctypes object that pins
    it (drop it before closing the mmap)."""
    anchor = ctypes.c_char.from_buffer(memory)
    return ctypes.addressof(anchor), anchor


class Uring:
    """One io_uring instance: SQ, CQ, SQE array, a provided-buffer ring
    (group 0) and, optionally, an eventfd signalled on every completion."""

    def __init__(self, sq_entries: int, cq_entries: int, buffer_entries: int, setup_flags: int = 0) -> None:
        params = bytearray(_PARAMS.size)
        _U32.pack_into(params, 0, sq_entries)  # sq_entries
        _U32.pack_into(params, 4, cq_entries)  # cq_entries (IORING_SETUP_CQSIZE)
        _U32.pack_into(params, 8, IORING_SETUP_CQSIZE | setup_flags)
        self.setup_flags = setup_flags
        buffer = (ctypes.c_char * len(params)).from_buffer(params)
        try:
            self.fd = _call(_SYS_IO_URING_SETUP, sq_entries, ctypes.byref(buffer))
        except OSError as exc:
            exc.step = "io_uring_setup"  # type: ignore[attr-defined]  # which call failed, for the probe's report
            raise
        finally:
            del buffer
        self._maps: list[mmap.mmap] = []
        self._anchors: list[Any] = []
        self.eventfd = -1
        try:
            self._setup(_PARAMS.unpack(params), buffer_entries)
        except BaseException:
            self.close()
            raise

    def _setup(self, p: tuple[int, ...], buffer_entries: int) -> None:
        sq_entries, cq_entries, _flags, _cpu, _idle, features = p[0:6]
        sq_head, sq_tail, sq_mask, _sq_entries, _sq_flags, _dropped, sq_array = p[10:17]
        cq_head, cq_tail, cq_mask, _cq_entries, _overflow, cqes = p[19:25]
        if not features & IORING_FEAT_NODROP:
            raise UringUnavailable(errno.ENOSYS, "io_uring without IORING_FEAT_NODROP (Linux < 5.5)")
        sq_size = sq_array + sq_entries * 4
        cq_size = cqes + cq_entries * _CQE.size
        if features & IORING_FEAT_SINGLE_MMAP:
            rings = self._map(max(sq_size, cq_size), IORING_OFF_SQ_RING)
            sq_ring = cq_ring = rings
        else:
            sq_ring = self._map(sq_size, IORING_OFF_SQ_RING)
            cq_ring = self._map(cq_size, IORING_OFF_CQ_RING)
        self._sqes = self._map(sq_entries * _SQE.size, IORING_OFF_SQES)
        self._sq = sq_ring
        self._cq = cq_ring
        self._sq_tail_at = sq_tail
        self._sq_head_at = sq_head
        self._sq_array_at = sq_array
        self.sq_mask = _U32.unpack_from(sq_ring, sq_mask)[0]
        self.sq_entries = sq_entries
        self._cq_head_at = cq_head
        self._cq_tail_at = cq_tail
        self._cqes_at = cqes
        self.cq_mask = _U32.unpack_from(cq_ring, cq_mask)[0]
        self._cq_entries = self.cq_mask + 1
        self._cqe_view = memoryview(cq_ring)[cqes : cqes + self._cq_entries * _CQE.size]
        self._sq_tail = _U32.unpack_from(sq_ring, sq_tail)[0]
        self._cq_head = _U32.unpack_from(cq_ring, cq_head)[0]
        # The provided-buffer ring: page-aligned memory of ours, registered
        # as buffer group 0 (IORING_REGISTER_PBUF_RING, Linux 5.19).
        self.buffer_entries = buffer_entries
        self.buffer_mask = buffer_entries - 1
        self._bufs = mmap.mmap(-1, max(mmap.PAGESIZE, buffer_entries * _BUF.size))
        address, anchor = _address(self._bufs)
        self._anchors.append(anchor)
        self._bufs_address = address
        try:
            self._register_buffers(IORING_REGISTER_PBUF_RING)
        except OSError as exc:
            exc.step = "IORING_REGISTER_PBUF_RING"  # type: ignore[attr-defined]
            raise
        self.buffer_tail = 0

    def _register_buffers(self, opcode: int) -> None:
        reg = bytearray(_BUF_REG.pack(self._bufs_address, self.buffer_entries, 0, 0, 0, 0, 0))
        reg_buffer = (ctypes.c_char * len(reg)).from_buffer(reg)
        try:
            _call(_SYS_IO_URING_REGISTER, self.fd, opcode, ctypes.byref(reg_buffer), 1)
        finally:
            del reg_buffer

    def reset_buffers(self) -> None:
        """Take every provided buffer back (nothing may be armed): the
        buffer ring is unregistered and registered again, empty (the
        kernel's head and our tail start at 0)."""
        self._register_buffers(IORING_UNREGISTER_PBUF_RING)
        self.buffer_tail = 0
        _U16.pack_into(self._bufs, 14, 0)
        self._register_buffers(IORING_REGISTER_PBUF_RING)

    def _map(self, length: int, offset: int) -> mmap.mmap:
        memory = mmap.mmap(self.fd, length, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        self._maps.append(memory)
        return memory

    # -- eventfd -------------------------------------------------------------
    def register_eventfd(self) -> int:
        """An eventfd the kernel signals on every posted completion."""
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        value = ctypes.c_int(efd)
        try:
            _call(_SYS_IO_URING_REGISTER, self.fd, IORING_REGISTER_EVENTFD, ctypes.byref(value), 1)
        except BaseException:
            os.close(efd)
            raise
        self.eventfd = efd
        return efd

    # -- buffer ring ---------------------------------------------------------
    def provide(self, address: int, length: int, bid: int) -> None:
        """Add one buffer (published by :meth:`publish_buffers`)."""
        _BUF_HEAD.pack_into(self._bufs, (self.buffer_tail & self.buffer_mask) * _BUF.size, address, length, bid)
        self.buffer_tail = (self.buffer_tail + 1) & 0xFFFF

    def provide_many(self, buffers: list[tuple[int, int, int]]) -> None:
        """Add (address, length, bid) buffers and publish them."""
        bufs = self._bufs
        mask = self.buffer_mask
        tail = self.buffer_tail
        pack = _BUF_HEAD.pack_into
        for address, length, bid in buffers:
            pack(bufs, (tail & mask) * 16, address, length, bid)
            tail = (tail + 1) & 0xFFFF
        self.buffer_tail = tail
        _U16.pack_into(bufs, 14, tail)

    def publish_buffers(self) -> None:
        # The tail is the u16 at offset 14 (entry 0's resv), stored after
        # the entries it publishes.
        _U16.pack_into(self._bufs, 14, self.buffer_tail)

    # -- submission ----------------------------------------------------------
    def prepare(
        self,
        opcode: int,
        fd: int,
        address: int,
        length: int,
        user_data: int,
        *,
        flags: int = 0,
        ioprio: int = 0,
        op_flags: int = 0,
        buf_group: int = 0,
    ) -> bool:
        """Queue one SQE; False if the SQ is full (submit first)."""
        head = _U32.unpack_from(self._sq, self._sq_head_at)[0]
        tail = self._sq_tail
        if (tail - head) & 0xFFFFFFFF >= self.sq_entries:
            return False
        index = tail & self.sq_mask
        _SQE.pack_into(self._sqes, index * _SQE.size, opcode, flags, ioprio, fd, 0, address, length, op_flags, user_data, buf_group, 0, 0, 0, 0)
        _U32.pack_into(self._sq, self._sq_array_at + index * 4, index)
        self._sq_tail = (tail + 1) & 0xFFFFFFFF
        return True

    def submit(self, wait: int = 0) -> int:
        """io_uring_enter: hand the queued SQEs over (one syscall), and wait
        for ``wait`` completions. Returns how many SQEs were consumed."""
        _U32.pack_into(self._sq, self._sq_tail_at, self._sq_tail)
        head = _U32.unpack_from(self._sq, self._sq_head_at)[0]
        pending = (self._sq_tail - head) & 0xFFFFFFFF
        flags = IORING_ENTER_GETEVENTS if wait else 0
        return _call(_SYS_IO_URING_ENTER, self.fd, pending, wait, flags, None, 0)

    # -- completion ----------------------------------------------------------
    def completions(self) -> list[tuple[int, int, int]]:
        """Every posted CQE (user_data, res, flags), consumed."""
        out = self.peek()
        if out:
            self.consume(len(out))
        return out

    def consume(self, count: int) -> None:
        """Hand the first ``count`` posted CQEs back to the kernel."""
        self._cq_head = head = (self._cq_head + count) & 0xFFFFFFFF
        _U32.pack_into(self._cq, self._cq_head_at, head)

    def peek(self) -> list[tuple[int, int, int]]:
        """Every posted CQE (user_data, res, flags), left in the ring."""
        cq = self._cq
        tail = _U32.unpack_from(cq, self._cq_tail_at)[0]
        head = self._cq_head
        if head == tail:
            return []
        # The posted CQEs lie in one run of the array, or two when they
        # wrap: unpacked in bulk.
        start = head & self.cq_mask
        end = start + ((tail - head) & 0xFFFFFFFF)
        view = self._cqe_view
        entries = self._cq_entries
        if end <= entries:
            out = list(_CQE_ITER(view[start * 16 : end * 16]))
        else:
            out = list(_CQE_ITER(view[start * 16 :]))
            out += _CQE_ITER(view[: (end - entries) * 16])
        return out

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            os.close(self.fd)  # the kernel cancels what is in flight
        finally:
            self.fd = -1
            if self.eventfd >= 0:
                os.close(self.eventfd)
                self.eventfd = -1
            self._anchors.clear()
            view = getattr(self, "_cqe_view", None)
            if view is not None:
                view.release()
            for memory in self._maps:
                memory.close()
            self._maps.clear()
            bufs = getattr(self, "_bufs", None)
            if bufs is not None:
                bufs.close()


def address_of(memory: mmap.mmap) -> tuple[int, Any]:
    """The address of ``memory`` and the object pinning it (see _address)."""
    return _address(memory)


#: the flags the uring backend sets its rings up with
SETUP_FLAGS = IORING_SETUP_COOP_TASKRUN

_probe_result: tuple[bool, str] | None = None
_probe_steps: list[tuple[str, str]] = []


def probe() -> tuple[bool, str]:
    """Once per process: can the uring backend work here? (available,
    reason). Sets up a small ring with a buffer ring and arms a multishot
    RECVMSG on a netlink socket, which answers -EINVAL before Linux 6.0."""
    global _probe_result
    if _probe_result is None:
        _probe_steps.clear()
        _probe_result = _probe(_probe_steps)
    return _probe_result


def probe_steps() -> list[tuple[str, str]]:
    """What :func:`probe` tried, in order, and what each step answered
    (for ``aionlmmap info``)."""
    probe()
    return list(_probe_steps)


def _probe(steps: list[tuple[str, str]]) -> tuple[bool, str]:
    import socket

    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        steps.append(("architecture", f"{machine}: not tried (Python cannot issue the memory barriers other than x86-64's need)"))
        return False, f"the uring backend needs x86-64's store ordering (Python cannot issue barriers); this is {machine}"
    steps.append(("architecture", f"{machine}: stores reach the kernel in program order"))
    try:
        ring = Uring(4, 8, 1, SETUP_FLAGS)
    except OSError as exc:
        step = getattr(exc, "step", "io_uring_setup")
        if step == "io_uring_setup":
            steps.append(("io_uring_setup (COOP_TASKRUN)", f"failed: {errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})"))
        else:
            steps.append(("io_uring_setup (COOP_TASKRUN)", "ok"))
            steps.append((step, f"failed: {errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})"))
        why = {
            errno.ENOSYS: "io_uring_setup answered ENOSYS: the kernel has no io_uring (or seccomp hides it)",
            errno.EPERM: "io_uring_setup answered EPERM: io_uring is disabled (sysctl kernel.io_uring_disabled, or a seccomp/container policy)",
            errno.EINVAL: f"{step} answered EINVAL: the kernel is older than 5.19",
        }.get(exc.errno or 0, f"io_uring setup failed at {step}: {exc}")
        return False, why
    steps.append(("io_uring_setup (COOP_TASKRUN)", "ok"))
    steps.append(("IORING_REGISTER_PBUF_RING", "ok: a provided-buffer ring (Linux >= 5.19)"))
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, 0))
        memory = mmap.mmap(-1, mmap.PAGESIZE)
        address, anchor = _address(memory)
        try:
            ring.provide(address, mmap.PAGESIZE, 0)
            ring.publish_buffers()
            header = bytearray(56)  # struct msghdr, all zero: no name, no control
            header_buffer = (ctypes.c_char * 56).from_buffer(header)
            ring.prepare(IORING_OP_RECVMSG, sock.fileno(), ctypes.addressof(header_buffer), 0, 1, flags=IOSQE_BUFFER_SELECT, ioprio=IORING_RECV_MULTISHOT)
            ring.submit()
            # NLMSG_NOOP with NLM_F_REQUEST|NLM_F_ACK: the kernel ACKs it.
            sock.send(struct.pack("=IHHII", 16, 1, 0x1 | 0x4, 1, 0))
            results = ring.completions()
            if not results:
                ring.submit(wait=1)
                results = ring.completions()
            del header_buffer
        finally:
            del anchor
            ring.close()
            memory.close()
    except OSError as exc:
        steps.append(("multishot IORING_OP_RECVMSG", f"failed: {exc}"))
        return False, f"io_uring multishot receive probe failed: {exc}"
    finally:
        sock.close()
        ring.close()
    for _user_data, res, flags in results:
        if res < 0:
            steps.append(("multishot IORING_OP_RECVMSG", f"failed: {errno.errorcode.get(-res, -res)} ({os.strerror(-res)})"))
            if res == -errno.EINVAL:
                return False, "multishot IORING_OP_RECVMSG answered EINVAL: the kernel is older than 6.0"
            return False, f"multishot IORING_OP_RECVMSG failed: {os.strerror(-res)}"
        if flags & IORING_CQE_F_BUFFER and flags & IORING_CQE_F_MORE:
            steps.append(("multishot IORING_OP_RECVMSG", f"ok: a netlink ACK of {res} bytes in a provided buffer, the receive still armed (IORING_CQE_F_MORE)"))
            return True, f"io_uring works on Linux {_sys.kernel_release()}: multishot RECVMSG into a provided-buffer ring"
    steps.append(("multishot IORING_OP_RECVMSG", "no completion for a netlink ACK"))
    return False, "multishot IORING_OP_RECVMSG posted no completion for a netlink ACK"
