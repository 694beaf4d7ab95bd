"""Many datagrams straight into ring frames with one ``recvmmsg(2)``.

The socket module has no recvmmsg, and a ``recvmsg_into`` per datagram costs
a syscall plus the Python objects it returns (ancillary tuples, an address
tuple) for every notification or nfqueue packet. This calls libc's
recvmmsg through ctypes with one ``struct mmsghdr`` per free frame: each
iovec points at a frame's data area (and a spill area of its own, so a
datagram larger than a frame still arrives whole), each control buffer
collects NETLINK_PKTINFO (the multicast group) and SCM_CREDENTIALS, each name
buffer the sender's ``sockaddr_nl``. The results are read back with
precompiled ``struct`` unpacks over one buffer.

Layouts (x86_64 and aarch64, LP64): ``struct iovec`` 16 bytes, ``struct
msghdr`` 56, ``struct mmsghdr`` 64 (msg_hdr, then ``unsigned msg_len``),
``struct cmsghdr`` 16 (``size_t cmsg_len; int level; int type``),
``struct sockaddr_nl`` 12.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from typing import Any

from ..constants import NETLINK_PKTINFO, SOL_NETLINK

__all__ = ["BatchReceiver", "available"]

_MSGHDR_SIZE = 56
_MMSGHDR_SIZE = 64
_IOVEC = struct.Struct("=QQ")
_IOVEC_PAIR = struct.Struct("=QQQQ")
#: cached iovec runs at most (a ring cycles through a few starting frames)
_MAX_IOVEC_RUNS = 256
# msg_name, msg_namelen(+pad), msg_iov, msg_iovlen, msg_control, msg_controllen, msg_flags(+pad)
_MSGHDR = struct.Struct("=QI4xQQQQi4x")
# one mmsghdr: msg_controllen at 40, msg_flags at 48, msg_len at 56
_RESULT_ITER = struct.Struct("=40xQi4xI4x").iter_unpack
_CMSGHDR = struct.Struct("=Qii")
_NAME_ITER = struct.Struct("=4xI4x").iter_unpack  # sockaddr_nl: nl_pid
_U32 = struct.Struct("=I")
_UCRED = struct.Struct("=iII")
_NAME_SIZE = 12
_CONTROL_SIZE = 64  # CMSG_SPACE(4) + CMSG_SPACE(12) = 16 + 4(+4) + 16 + 12(+4)
_PKTINFO_SPACE = 24  # CMSG_SPACE(sizeof(struct nl_pktinfo))
# the first control message of a slot: cmsg_len, level, type, and a u32 of data
_CONTROL_ITER = struct.Struct("=QiiI" + f"{_CONTROL_SIZE - 20}x").iter_unpack
_SOL_SOCKET = 1
_SCM_CREDENTIALS = 2
_MSG_DONTWAIT = 0x40

_libc: Any = None


def _load() -> Any:
    global _libc
    if _libc is None:
        try:
            from .. import _sys  # libc without ctypes.util (whose find_library forks ldconfig)

            function = _sys.libc.recvmmsg
        except (OSError, AttributeError):
            _libc = False
            return _libc
        function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        function.restype = ctypes.c_int
        _libc = function
    return _libc


def available() -> bool:
    """True where libc has recvmmsg and pointers are 8 bytes (the layouts above)."""
    return ctypes.sizeof(ctypes.c_void_p) == 8 and bool(_load())


class BatchReceiver:
    """Receives up to ``batch`` datagrams per syscall into given frames."""

    def __init__(self, fd: int, memory: mmap.mmap, data_offsets: list[int], data_size: int, spill_size: int, batch: int) -> None:
        self._fd = fd
        self._recvmmsg = _load()
        self.batch = batch
        self._data_size = data_size
        self._spill_size = spill_size
        # Addresses of the frame data areas in the ring mapping.
        self._anchor = ctypes.c_char.from_buffer(memory)
        base = ctypes.addressof(self._anchor)
        self._frame_addresses = [base + offset for offset in data_offsets]
        # One spill area per slot: several oversized datagrams in one call
        # must not overwrite each other. Anonymous memory: pages are only
        # touched when a datagram really spills.
        self.spill = mmap.mmap(-1, spill_size * batch)
        self._spill_anchor = ctypes.c_char.from_buffer(self.spill)
        spill_base = ctypes.addressof(self._spill_anchor)
        self._spill_address = spill_base
        #: iovecs of runs of consecutive frames, by (first frame, count)
        self._iovec_runs: dict[int, bytes] = {}
        # mmsghdr array, iovec pairs, names and control buffers in one block.
        self._headers = ctypes.create_string_buffer(_MMSGHDR_SIZE * batch)
        self._iovecs = ctypes.create_string_buffer(2 * _IOVEC.size * batch)
        self._names = ctypes.create_string_buffer(_NAME_SIZE * batch)
        self._controls = ctypes.create_string_buffer(_CONTROL_SIZE * batch)
        self._headers_address = ctypes.addressof(self._headers)
        iovecs = ctypes.addressof(self._iovecs)
        self._iovecs_address = iovecs
        names = ctypes.addressof(self._names)
        controls = ctypes.addressof(self._controls)
        for slot in range(batch):
            _IOVEC.pack_into(self._iovecs, (2 * slot + 1) * _IOVEC.size, spill_base + slot * spill_size, spill_size)
            _MSGHDR.pack_into(
                self._headers,
                slot * _MMSGHDR_SIZE,
                names + slot * _NAME_SIZE,
                _NAME_SIZE,
                iovecs + 2 * slot * _IOVEC.size,
                2,
                controls + slot * _CONTROL_SIZE,
                _CONTROL_SIZE,
                0,
            )
        self._header_template = bytes(self._headers.raw)
        self._names_view = memoryview(self._names).cast("B")
        self._controls_view = memoryview(self._controls).cast("B")
        self._headers_view = memoryview(self._headers).cast("B")

    def receive(self, frames: list[int]) -> int:
        """Receive into ``frames`` (at most ``batch``); returns how many
        datagrams arrived (the first that many of ``frames``, in order).
        Read them with :meth:`results`. Raises BlockingIOError when nothing
        is queued, OSError otherwise."""
        count = len(frames)
        # Restore namelen/controllen the kernel overwrote last time.
        ctypes.memmove(self._headers_address, self._header_template, count * _MMSGHDR_SIZE)
        first = frames[0]
        if frames[-1] - first == count - 1:
            # A run of consecutive frames (the usual case: the ring is
            # released in order): the iovecs of this run were built before.
            key = first << 16 | count
            iovecs = self._iovec_runs.get(key)
            if iovecs is None:
                iovecs = self._iovecs_for(frames)
                if len(self._iovec_runs) >= _MAX_IOVEC_RUNS:
                    self._iovec_runs.clear()
                self._iovec_runs[key] = iovecs
        else:
            iovecs = self._iovecs_for(frames)
        ctypes.memmove(self._iovecs_address, iovecs, len(iovecs))
        received = self._recvmmsg(self._fd, self._headers_address, count, _MSG_DONTWAIT, None)
        if received < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise BlockingIOError(err, os.strerror(err))
            raise OSError(err, os.strerror(err))
        return received  # type: ignore[no-any-return]

    def _iovecs_for(self, frames: list[int]) -> bytes:
        """The iovec pairs (frame data area, the slot's spill area) for
        ``frames`` in slot order."""
        addresses = self._frame_addresses
        data_size = self._data_size
        spill_base = self._spill_address
        spill_size = self._spill_size
        return b"".join(
            _IOVEC_PAIR.pack(addresses[index], data_size, spill_base + slot * spill_size, spill_size) for slot, index in enumerate(frames)
        )

    def results(self, received: int) -> Any:
        """One ``((msg_controllen, msg_flags, msg_len), (sender_pid,),
        (cmsg_len, cmsg_level, cmsg_type, group))`` per datagram received:
        one C-level pass per array. The last tuple is the first control
        message; when it is not a lone NETLINK_PKTINFO (``cmsg_len`` up to
        ``_PKTINFO_SPACE``), ask :meth:`slot_metadata`."""
        return zip(
            _RESULT_ITER(self._headers_view[: received * _MMSGHDR_SIZE]),
            _NAME_ITER(self._names_view[: received * _NAME_SIZE]),
            _CONTROL_ITER(self._controls_view[: received * _CONTROL_SIZE]),
        )

    def slot_metadata(self, slot: int, control_length: int) -> tuple[int, int]:
        """``(group, (uid << 32) | gid)`` of a slot whose control data is
        not plain: walk every control message."""
        controls_view = self._controls_view
        offset = slot * _CONTROL_SIZE
        end = offset + min(control_length, _CONTROL_SIZE)
        group = credentials = 0
        while end - offset >= _CMSGHDR.size:
            length, level, kind = _CMSGHDR.unpack_from(controls_view, offset)
            if length < _CMSGHDR.size:
                break
            if level == _SOL_SOCKET and kind == _SCM_CREDENTIALS:
                _pid, uid, gid = _UCRED.unpack_from(controls_view, offset + _CMSGHDR.size)
                credentials = (uid << 32) | gid
            elif level == SOL_NETLINK and kind == NETLINK_PKTINFO:
                group = _U32.unpack_from(controls_view, offset + _CMSGHDR.size)[0]
            offset += (length + 7) & ~7
        return group, credentials

    def spill_bytes(self, slot_frame_position: int, length: int) -> bytes:
        start = slot_frame_position * self._spill_size
        return self.spill[start : start + length]

    def close(self) -> None:
        # Drop the ctypes exports before the mappings can be closed.
        self._anchor = None  # type: ignore[assignment]
        self._spill_anchor = None  # type: ignore[assignment]
        try:
            self.spill.close()
        except BufferError:
            pass

