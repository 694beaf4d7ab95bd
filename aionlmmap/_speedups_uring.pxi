# The compiled twins of the uring backend's per-datagram work
# (aionlmmap/backends/uring.py), included at the end of _speedups.pyx.
#
# Twins:
#     aionlmmap.backends.uring: UringBackend._reap (as uring_reap),
#                               UringBackend._provide (as uring_provide)
#
# The pure methods are the reference; tests/test_uring_twins.py drives a
# pure and a compiled backend through the same datagrams, holds and
# releases and compares every frame delivered and every counter. Both hand
# any io_uring but the real one (the tests' scripted ring) to the pure
# method, and so does each for an input off the common path, so those
# behave as the reference by construction.

cdef extern from *:
    """
    /* The CQ tail is written by the kernel after the CQEs it publishes, the
       CQ head and the buffer ring's tail by us after the entries we are
       done with or publish (io_uring's ring protocol, as liburing's
       io_uring_smp_load_acquire / io_uring_smp_store_release). */
    static inline uint32_t aionlmmap_uring_load_acquire(const uint8_t *at)
    { return __atomic_load_n((const uint32_t *)at, __ATOMIC_ACQUIRE); }
    static inline void aionlmmap_uring_store_u32(uint8_t *at, uint32_t value)
    { __atomic_store_n((uint32_t *)at, value, __ATOMIC_RELEASE); }
    static inline void aionlmmap_uring_store_u16(uint8_t *at, uint16_t value)
    { __atomic_store_n((uint16_t *)at, value, __ATOMIC_RELEASE); }
    """
    uint32_t aionlmmap_uring_load_acquire(const uint8_t *at)
    void aionlmmap_uring_store_u32(uint8_t *at, uint32_t value)
    void aionlmmap_uring_store_u16(uint8_t *at, uint16_t value)

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport int32_t, uint64_t

cdef enum:
    _URING_CQE_SIZE = 16
    _URING_BUF_SIZE = 16
    #: what UringBackend._take unpacks in front of a datagram (_unpack_prefix):
    #: recvmsg_out, sockaddr_nl, the first cmsghdr and its first u32
    _URING_COMMON_PREFIX = 48

cdef object _uring_Uring = None
cdef object _uring_pure_reap = None
cdef object _uring_pure_provide = None
cdef uint64_t _uring_recv_data = 0
cdef uint64_t _uring_send_bit = 0
cdef Py_ssize_t _uring_prefix = 0
cdef uint32_t _uring_pktinfo_space = 0, _uring_msg_trunc = 0, _uring_f_buffer = 0, _uring_f_more = 0
cdef uint32_t _uring_netlink_pktinfo = 0, _uring_valid = 0, _uring_skip = 0
cdef int32_t _uring_sol_netlink = 0


cdef int _uring_bind() except -1:
    global _uring_Uring, _uring_pure_reap, _uring_pure_provide, _uring_recv_data, _uring_send_bit, _uring_prefix
    global _uring_pktinfo_space, _uring_msg_trunc, _uring_f_buffer, _uring_f_more, _uring_netlink_pktinfo
    global _uring_valid, _uring_skip, _uring_sol_netlink
    from aionlmmap.backends import _uring_sys, uring
    from aionlmmap import frames
    if frames.UNUSED != 0:
        raise TypeError("FrameStatus.UNUSED is not 0: update _speedups_uring.pxi")
    if uring._unpack_prefix.__self__.size != _URING_COMMON_PREFIX:
        raise TypeError("the uring backend's common prefix changed: update _speedups_uring.pxi")
    _uring_recv_data = uring._RECV
    _uring_send_bit = uring._SEND
    _uring_prefix = uring._PREFIX
    _uring_pktinfo_space = uring._PKTINFO_SPACE
    _uring_msg_trunc = uring._MSG_TRUNC
    _uring_f_buffer = uring._F_BUFFER
    _uring_f_more = uring._F_MORE
    _uring_netlink_pktinfo = uring.NETLINK_PKTINFO
    _uring_sol_netlink = uring.SOL_NETLINK
    _uring_valid = frames.VALID
    _uring_skip = frames.SKIP
    _uring_pure_reap = uring._pure_reap
    _uring_pure_provide = uring._pure_provide
    _uring_Uring = _uring_sys.Uring
    return 0


def uring_reap(backend):
    """Twin of :meth:`aionlmmap.backends.uring.UringBackend._reap`
    (installed as that method): every posted completion taken and handed
    back to the kernel; the common one (the next frame's datagram, carrying
    only its group, whole) turned into a VALID frame header here, without a
    tuple per completion; any other goes through the pure ``_take`` alone,
    in its place. Returns how many completions there were."""
    cdef Py_buffer cq_view, memory_view
    cdef uint8_t *cq
    cdef uint8_t *memory
    cdef const uint8_t *entry
    cdef const uint8_t *at
    cdef const char *copied
    cdef uint32_t head, tail, mask, count, first, taken, res_flags, bid, payload_length
    cdef Py_ssize_t cqes_at, tail_at, head_at, start, i, produced, index, offset, frame_nr
    cdef uint64_t user_data
    cdef int32_t res
    cdef bint fast, cleared
    cdef list provided, buffer_at, offsets
    if _uring_Uring is None:
        _uring_bind()
    uring = backend._uring
    if type(uring) is not _uring_Uring:
        return _uring_pure_reap(backend)
    mask = uring.cq_mask
    cqes_at = uring._cqes_at
    # Uring.peek, then consume: the posted CQEs copied out before the head
    # moves (the kernel may reuse their slots at once), all consumed.
    data = None
    PyObject_GetBuffer(uring._cq, &cq_view, PyBUF_WRITABLE)
    try:
        cq = <uint8_t *>cq_view.buf
        tail_at = uring._cq_tail_at
        head_at = uring._cq_head_at
        if (0 <= tail_at <= cq_view.len - 4 and 0 <= head_at <= cq_view.len - 4 and cqes_at >= 0
                and cqes_at + (<Py_ssize_t>mask + 1) * _URING_CQE_SIZE <= cq_view.len):
            tail = aionlmmap_uring_load_acquire(cq + tail_at)
            head = uring._cq_head
            count = tail - head
            data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>count * _URING_CQE_SIZE)
            copied = PyBytes_AS_STRING(data)
            first = head & mask
            if first + count <= mask + 1:
                memcpy(<char *>copied, cq + cqes_at + first * _URING_CQE_SIZE, count * _URING_CQE_SIZE)
            else:
                memcpy(<char *>copied, cq + cqes_at + first * _URING_CQE_SIZE, (mask + 1 - first) * _URING_CQE_SIZE)
                memcpy(<char *>copied + (mask + 1 - first) * _URING_CQE_SIZE, cq + cqes_at, (count - (mask + 1 - first)) * _URING_CQE_SIZE)
            if count:
                uring._cq_head = tail
                aionlmmap_uring_store_u32(cq + head_at, tail)
    finally:
        PyBuffer_Release(&cq_view)
    if data is None:
        return _uring_pure_reap(backend)  # a layout off the rings' (the pure method raises)
    fast = backend._in_place
    i = 0
    while i < count:
        # A run of common completions (UringBackend._take's tight loop)...
        in_kernel = backend._in_kernel
        popleft = in_kernel.popleft
        provided = backend._provided
        buffer_at = backend._buffer_at
        offsets = backend.rx.offsets
        frame_nr = len(offsets)
        produced = 0
        cleared = False
        PyObject_GetBuffer(backend._memory, &memory_view, PyBUF_WRITABLE)
        try:
            memory = <uint8_t *>memory_view.buf
            while i < count:
                entry = <const uint8_t *>copied + i * _URING_CQE_SIZE
                memcpy(&user_data, entry, 8)
                res = <int32_t>_u32(entry + 8)
                res_flags = _u32(entry + 12)
                if user_data != _uring_recv_data:
                    if user_data & _uring_send_bit:
                        break  # a send's result: the pure _take records it
                    i += 1  # a no-op's or a cancel's: nothing to do (as _take)
                    continue
                if not fast or res < 0 or not res_flags & _uring_f_buffer or not in_kernel:
                    break
                bid = res_flags >> 16
                if <uint32_t>in_kernel[0] != bid or bid >= <uint32_t>frame_nr or bid >= <uint32_t>len(buffer_at) or bid >= <uint32_t>len(provided):
                    break
                index = bid
                start = buffer_at[index]
                offset = offsets[index]
                if start < 0 or start + _URING_COMMON_PREFIX > memory_view.len or offset < 0 or offset + 24 > memory_view.len:
                    break
                at = memory + start
                payload_length = _u32(at + 8)
                if (_u32(at + 4) != _uring_pktinfo_space or <int32_t>_u32(at + 36) != _uring_sol_netlink
                        or _u32(at + 40) != _uring_netlink_pktinfo or <Py_ssize_t>payload_length != res - _uring_prefix
                        or _u32(at + 12) & _uring_msg_trunc):
                    break
                popleft()
                provided[index] = False
                if not res_flags & _uring_f_more:
                    backend._armed = False
                cleared = True
                # NL_MMAP_HDR: status, len, group, pid (the sender), uid, gid
                (<uint32_t *>(memory + offset))[0] = _uring_valid
                (<uint32_t *>(memory + offset))[1] = payload_length
                (<uint32_t *>(memory + offset))[2] = _u32(at + 44)
                (<uint32_t *>(memory + offset))[3] = _u32(at + 20)
                (<uint32_t *>(memory + offset))[4] = 0
                (<uint32_t *>(memory + offset))[5] = 0
                produced += 1
                i += 1
        finally:
            PyBuffer_Release(&memory_view)
        if cleared:
            backend._recv_errors = 0
        if produced:
            backend.frames_produced += produced
        if i < count:
            # ...then the one that is not, through the reference, alone.
            entry = <const uint8_t *>copied + i * _URING_CQE_SIZE
            memcpy(&user_data, entry, 8)
            backend._take([(user_data, <int32_t>_u32(entry + 8), _u32(entry + 12))])
            i += 1
    return count


def uring_provide(backend):
    """Twin of :meth:`aionlmmap.backends.uring.UringBackend._provide`
    (installed as that method): the free frames from the producer head on,
    stepping past SKIP frames, up to the first busy or provided one, written
    into the buffer ring (``struct io_uring_buf``: addr, len, bid) and
    published with one store of its tail."""
    cdef Py_buffer memory_view, bufs_view
    cdef uint8_t *bufs
    cdef const uint8_t *memory
    cdef Py_ssize_t frame_nr, index, n, offset, position
    cdef uint32_t status, size, buffer_mask
    cdef uint16_t buffer_tail
    cdef uint64_t address
    cdef list provided, offsets, buffer_at, batch
    if _uring_Uring is None:
        _uring_bind()
    uring = backend._uring
    if type(uring) is not _uring_Uring:
        return _uring_pure_provide(backend)
    rx = backend.rx
    provided = backend._provided
    offsets = rx.offsets
    buffer_at = backend._buffer_at
    frame_nr = rx.frame_nr
    index = backend._producer
    buffer_mask = uring.buffer_mask
    buffer_tail = uring.buffer_tail
    base = backend._base
    size = backend._buffer_size
    if (len(provided) != frame_nr or len(offsets) != frame_nr or len(buffer_at) != frame_nr or not 0 <= index < frame_nr
            or not 0 <= buffer_tail <= 0xFFFF):
        return _uring_pure_provide(backend)
    batch = []
    PyObject_GetBuffer(backend._memory, &memory_view, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(uring._bufs, &bufs_view, PyBUF_WRITABLE)
        try:
            memory = <const uint8_t *>memory_view.buf
            bufs = <uint8_t *>bufs_view.buf
            if (<Py_ssize_t>buffer_mask + 1) * _URING_BUF_SIZE > bufs_view.len:
                batch = None
            else:
                for n in range(frame_nr):
                    offset = offsets[n]
                    if offset < 0 or offset + 4 > memory_view.len:
                        batch = None  # the pure method raises where it gets to it
                        break
            if batch is not None:
                for n in range(frame_nr):
                    if provided[index]:
                        break
                    status = _u32(memory + <Py_ssize_t>offsets[index])
                    if status == 0:  # UNUSED
                        address = <uint64_t>(base + buffer_at[index])
                        position = (buffer_tail & buffer_mask) * _URING_BUF_SIZE
                        memcpy(bufs + position, &address, 8)
                        memcpy(bufs + position + 8, &size, 4)
                        (<uint16_t *>(bufs + position + 12))[0] = <uint16_t>index
                        buffer_tail = <uint16_t>(buffer_tail + 1)
                        provided[index] = True
                        batch.append(index)
                    elif status != _uring_skip:
                        break
                    index += 1
                    if index == frame_nr:
                        index = 0
                if batch:
                    # The tail is the u16 at offset 14 (entry 0's resv),
                    # stored after the entries it publishes.
                    aionlmmap_uring_store_u16(bufs + 14, buffer_tail)
        finally:
            PyBuffer_Release(&bufs_view)
    finally:
        PyBuffer_Release(&memory_view)
    if batch is None:
        return _uring_pure_provide(backend)
    backend._producer = index
    # The producer head, where the Ring starts copying frames out for a
    # starving waiter when the ring is full (FrameKeeper._relieve).
    rx.head = index
    if batch:
        backend._in_kernel.extend(batch)
        uring.buffer_tail = buffer_tail
