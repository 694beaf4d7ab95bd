# The compiled twin of the drainer's hot loop (aionlmmap/drainer.py),
# included at the end of _speedups.pyx.
#
# Twins:
#     aionlmmap.drainer: Drainer._walk_unsolicited (as walk_unsolicited),
#                        Drainer._release (as release)
#     aionlmmap.ring:    TakenBatch.take (as take_batch),
#                        TakenBatch.finish (as finish_batch)
#
# The pure method is the reference; tests/test_drainer_twins.py feeds both
# drainers the same frame sequences and compares every delivery (and both
# batch twins the same unsolicited queues).

cdef enum:
    _FRAME_HDRLEN = 24  # NL_MMAP_HDRLEN
    _STATUS_VALID = 2

# aionlmmap.message.ReceivedFrame and where its slots live: a frame is made
# as ReceivedFrame.__init__ makes it, its slots written directly (the
# constructor call is most of what the pure walk spends per frame).
cdef object _ReceivedFrame = None
cdef Py_ssize_t _slot_buffer, _slot_alive, _slot_group, _slot_sender_pid, _slot_uid, _slot_gid
cdef Py_ssize_t _slot_frame_index, _slot_pending, _slot_holds, _slot_views, _slot_on_hold_change
cdef object _pure_walk_unsolicited = None
cdef object _pure_release = None
cdef object _pure_take_batch = None
cdef object _pure_finish_batch = None
cdef object _FrameRing = None
cdef object _COPIED = None
cdef tuple _FRAME_SLOTS = ("buffer", "alive", "group", "sender_pid", "uid", "gid", "frame_index", "pending", "holds",
                           "views", "on_hold_change")


cdef int _bind_drainer() except -1:
    global _ReceivedFrame, _pure_walk_unsolicited, _pure_release, _FrameRing, _COPIED, _pure_take_batch, _pure_finish_batch
    global _slot_buffer, _slot_alive, _slot_group, _slot_sender_pid, _slot_uid, _slot_gid
    global _slot_frame_index, _slot_pending, _slot_holds, _slot_views, _slot_on_hold_change
    from aionlmmap import drainer, frames, message
    cls = message.ReceivedFrame
    if tuple(cls.__slots__) != _FRAME_SLOTS:
        raise TypeError(f"ReceivedFrame's slots changed ({cls.__slots__}): update _speedups_drain.pxi")
    cdef list offsets = []
    for name in _FRAME_SLOTS:
        offset = aionlmmap_slot_offset(cls.__dict__[name])
        if offset < 0:
            raise TypeError(f"ReceivedFrame.{name} is not a plain slot: the compiled drainer cannot build frames")
        offsets.append(offset)
    (_slot_buffer, _slot_alive, _slot_group, _slot_sender_pid, _slot_uid, _slot_gid,
     _slot_frame_index, _slot_pending, _slot_holds, _slot_views, _slot_on_hold_change) = offsets
    if frames.UNUSED != 0:
        raise TypeError("FrameStatus.UNUSED is not 0: update _speedups_drain.pxi")
    from aionlmmap import ring as ring_module
    _pure_take_batch = ring_module._pure_take_batch
    _pure_finish_batch = ring_module._pure_finish_batch
    _pure_walk_unsolicited = drainer._pure_walk_unsolicited
    _pure_release = drainer._pure_release
    _FrameRing = frames.FrameRing
    _COPIED = message.COPIED
    _ReceivedFrame = cls
    return 0


def walk_unsolicited(drainer):
    """Twin of :meth:`aionlmmap.drainer.Drainer._walk_unsolicited` (installed
    as that method): the run of VALID frames from the kernel holding one
    message that is no reply, each queued for the iterator as a lone
    Message. Stops where the pure walk stops; returns whether it took any."""
    cdef Py_buffer view
    cdef const uint8_t *memory
    cdef const uint8_t *at
    cdef Py_ssize_t frame_nr, budget, taken = 0, index, offset
    cdef uint32_t status, length, group, sender, uid, gid, message_length, seq
    cdef list offsets, slots, views
    if _ReceivedFrame is None:
        _bind_drainer()
    rx = drainer._rx
    frame_nr = rx.frame_nr
    marks = drainer._backend.overrun_marks
    budget = min(frame_nr, marks[0] - drainer._walked) if marks else frame_nr
    if budget <= 0:
        return False
    offsets = rx.offsets
    slots = drainer._slots
    views = drainer._backend.rx_views
    index = drainer._rx_next
    if (type(offsets) is not list or type(slots) is not list or type(views) is not list or len(offsets) != frame_nr
            or len(slots) != frame_nr or len(views) != frame_nr or not 0 <= index < frame_nr):
        return _pure_walk_unsolicited(drainer)
    unsolicited = drainer._unsolicited
    hold_callback = drainer._hold_callback
    cls = _Message
    if cls is None:
        _bind_message()
        cls = _Message
    PyObject_GetBuffer(rx.buffer, &view, PyBUF_SIMPLE)
    try:
        # Frames lie in ring order in memory, the last one furthest: if its
        # two headers fit, every frame's do (else the pure walk's unpack
        # raises, and it is the reference for that).
        offset = offsets[frame_nr - 1]
        if offsets[0] < 0 or offset + _FRAME_HDRLEN + NLMSG_HDRLEN > view.len:
            budget = -1
        memory = <const uint8_t *>view.buf
        while taken < budget:
            at = memory + <Py_ssize_t>offsets[index]
            status = _u32(at)
            length = _u32(at + 4)
            group = _u32(at + 8)
            sender = _u32(at + 12)
            message_length = _u32(at + 24)
            seq = _u32(at + 32)
            if (status != _STATUS_VALID or sender or (seq and not group) or slots[index] is not None
                    or not (NLMSG_HDRLEN <= message_length <= length <= ((message_length + 3) & ~3))):
                break
            uid = _u32(at + 16)
            gid = _u32(at + 20)
            frame = _new_object(_ReceivedFrame)
            aionlmmap_set_slot(frame, _slot_buffer, views[index][:length])
            aionlmmap_set_slot(frame, _slot_alive, True)
            aionlmmap_set_slot(frame, _slot_group, group)
            aionlmmap_set_slot(frame, _slot_sender_pid, 0)
            aionlmmap_set_slot(frame, _slot_uid, uid)
            aionlmmap_set_slot(frame, _slot_gid, gid)
            aionlmmap_set_slot(frame, _slot_frame_index, index)
            aionlmmap_set_slot(frame, _slot_pending, 1)
            aionlmmap_set_slot(frame, _slot_holds, 0)
            aionlmmap_set_slot(frame, _slot_views, None)
            aionlmmap_set_slot(frame, _slot_on_hold_change, hold_callback)
            slots[index] = frame
            unsolicited.append(aionlmmap_new_message(cls, _u16(at + 28), _u16(at + 30), seq, _u32(at + 36),
                                                     NLMSG_HDRLEN, message_length, frame))
            taken += 1
            index += 1
            if index == frame_nr:
                index = 0
    finally:
        PyBuffer_Release(&view)
    if budget < 0:
        return _pure_walk_unsolicited(drainer)
    if not taken:
        return False
    drainer._rx_next = index
    drainer._walked += taken
    stats = drainer.stats
    stats.frames += taken
    stats.messages += taken
    stats.unsolicited += taken
    drainer._wake_iterator()
    return True


def release(drainer, frame):
    """Twin of :meth:`aionlmmap.drainer.Drainer._release` (installed as that
    method): the frame goes back to the producer (its status word UNUSED)
    and every view into it dies (``ReceivedFrame.retire``), without the two
    Python method calls per frame. Frames and rings of other classes (the
    uring backend's ring calls back on release) go through their own
    methods."""
    return _release_frame(drainer, frame)


cdef object _release_frame(drainer, frame):
    cdef Py_buffer view
    cdef Py_ssize_t index, offset
    cdef list slots
    cdef object ring
    if _ReceivedFrame is None:
        _bind_drainer()
    if type(frame) is not _ReceivedFrame:
        return _pure_release(drainer, frame)
    index = frame.frame_index
    if index >= 0 and not drainer._closed:
        slots = drainer._slots
        if slots[index] is frame:
            slots[index] = None
            ring = drainer._rx
            if type(ring) is _FrameRing:
                # FrameRing.release: nm_status = UNUSED, one u32 store
                offset = ring.offsets[index]
                PyObject_GetBuffer(ring.buffer, &view, PyBUF_WRITABLE)
                try:
                    if offset < 0 or offset + 4 > view.len:
                        raise _struct.error(f"pack_into requires a buffer of at least {offset + 4} bytes")
                    memset(<char *>view.buf + offset, 0, 4)
                finally:
                    PyBuffer_Release(&view)
            else:
                ring.release(index)
            if drainer._paused:
                drainer._resume()
    elif index == _COPIED:
        frame.frame_index = -1  # counted out once
        drainer._copied_bytes -= len(frame.buffer)
    # ReceivedFrame.retire
    if isinstance(frame.buffer, memoryview):
        frame.alive = False
        views = frame.views
        if views:
            for one in views:
                one.release()
            frame.views = None
        frame.buffer = b""


# --- Ring.iterate_batches' steps ----------------------------------------------------


cdef int _retire(frame) except -1:
    """ReceivedFrame.retire"""
    if isinstance(frame.buffer, memoryview):
        frame.alive = False
        views = frame.views
        if views:
            for one in views:
                one.release()
            frame.views = None
        frame.buffer = b""
    return 0


cdef int _finish_lone_frames(drainer, list messages) except -1:
    """What ``for msg in messages: frame.pending = 0; if not frame.holds:
    drainer._release(frame)`` does, for a compiled drainer on a FrameRing
    that is open and not paused (nothing in the loop can pause or close
    it): the ring's slots, offsets and memory looked up once for the list
    instead of once per frame. Anything off that path (another frame
    class, a copied frame, an index or offset out of range) takes
    ``_release_frame``, which gives the reference's result or error."""
    cdef Py_buffer view
    cdef Py_ssize_t index, offset, slot_count, offset_count
    cdef list slots = drainer._slots
    rx = drainer._rx
    cdef object offsets = rx.offsets
    if type(slots) is not list or type(offsets) is not list:
        for msg in messages:
            frame = msg[6]
            frame.pending = 0
            if not frame.holds:
                _release_frame(drainer, frame)
        return 0
    slot_count = len(slots)
    offset_count = len(<list>offsets)
    PyObject_GetBuffer(rx.buffer, &view, PyBUF_WRITABLE)
    try:
        for msg in messages:
            frame = msg[6]
            if type(frame) is not _ReceivedFrame:
                frame.pending = 0
                if not frame.holds:
                    _release_frame(drainer, frame)
                continue
            aionlmmap_set_slot(frame, _slot_pending, 0)  # its one message is consumed
            if frame.holds:
                continue
            index = frame.frame_index
            if index < 0 or index >= slot_count or index >= offset_count:
                _release_frame(drainer, frame)
                continue
            if slots[index] is frame:
                offset = (<list>offsets)[index]
                if offset < 0 or offset + 4 > view.len:
                    _release_frame(drainer, frame)  # raises as FrameRing.release does
                    continue
                slots[index] = None
                memset(<char *>view.buf + offset, 0, 4)  # FrameRing.release: nm_status = UNUSED
            _retire(frame)
    finally:
        PyBuffer_Release(&view)
    return 0

from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION, PyMethod_GET_SELF
from collections import deque as _deque

cdef object _packet_of_function = None  # the compiled Queue._packet_of
cdef object _release_function = None  # the compiled Drainer._release


cdef inline bint _is_method(object bound, object function):
    """Whether ``bound`` is ``function`` bound to an object (a method the
    compiled core installed): then its C body is called directly."""
    return PyMethod_Check(bound) and <object>PyMethod_GET_FUNCTION(bound) is function


def take_batch(batch, queue, convert, on_overrun):
    """Twin of :meth:`aionlmmap.ring.TakenBatch.take` (installed as that
    method): the same entries taken, converted and recorded, the loop in C,
    and the compiled ``Queue._packet_of`` called without a Python call."""
    global _packet_of_function
    cdef list items = []
    cdef list lone, shared
    cdef bint packets
    if _ReceivedFrame is None:
        _bind_drainer()
    if _packet_of_function is None:
        _packet_of_function = _packet_of
    lone = batch.lone
    shared = batch.shared
    if type(lone) is not list or type(shared) is not list or type(queue) is not _deque:
        return _pure_take_batch(batch, queue, convert, on_overrun)
    cls = _Message
    if cls is None:
        _bind_message()
        cls = _Message
    packets = _is_method(convert, _packet_of_function)
    owner = <object>PyMethod_GET_SELF(convert) if packets else None
    popleft = queue.popleft
    while queue:
        entry = popleft()
        if type(entry) is cls:
            lone.append(entry)
            if packets:
                item = _packet_of_c(owner, entry)
            elif convert is None:
                item = entry
            else:
                item = convert(entry)
            if item is not None:
                items.append(item)
            continue
        frame, messages = entry
        if frame is None:
            if on_overrun is not None:
                on_overrun()
                continue
            if lone or shared:
                queue.appendleft(entry)  # reported by the next step
            else:
                batch.overrun = messages
            break
        shared.append(frame)
        for msg in messages:
            item = msg if convert is None else convert(msg)
            if item is not None:
                items.append(item)
    return items


def finish_batch(batch, ring):
    """Twin of :meth:`aionlmmap.ring.TakenBatch.finish` (installed as that
    method): each lone message's frame marked consumed and, unless held,
    released by the compiled ``Drainer._release`` without a Python call."""
    global _release_function
    cdef list lone, shared
    cdef bint in_c
    if _ReceivedFrame is None:
        _bind_drainer()
    if _release_function is None:
        _release_function = release
    lone = batch.lone
    shared = batch.shared
    if type(lone) is not list or type(shared) is not list:
        return _pure_finish_batch(batch, ring)
    release_method = ring._release
    in_c = _is_method(release_method, _release_function)
    if in_c and lone and not ring._closed and not ring._paused and type(ring._rx) is _FrameRing:
        _finish_lone_frames(ring, lone)
        lone = []
    for msg in lone:
        frame = msg[6]
        if type(frame) is _ReceivedFrame:
            aionlmmap_set_slot(frame, _slot_pending, 0)  # its one message is consumed
        else:
            frame.pending = 0
        if not frame.holds:
            if in_c:
                _release_frame(ring, frame)
            else:
                release_method(frame)
    if shared:
        batch_done = ring._batch_done
        for frame in shared:
            batch_done(frame)
    batch.lone = []
    batch.shared = []
