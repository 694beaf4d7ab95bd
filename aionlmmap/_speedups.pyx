# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled core: C twins of the pure-Python hot functions.

Each function here has the name and signature of a pure-Python function
(the reference, which the docs explain) and gives the same result and the
same exception on the same input (tests/test_compiled_core.py feeds both
real dumps and fuzzed bytes). Inputs off the common path (negative offsets,
a length past the buffer) are handed to the pure function itself, so their
behaviour is the reference's by construction.

Twins:
    aionlmmap.message:      header_run, parse_frame, split_dump_chunk, flatten_lists (_speedups_flatten.pxi)
    aionlmmap.attributes:   iter_attributes, parse_attributes
    aionlmmap.families.nfqueue: decode_packet_header, packet_head, Queue._packet_of, Packet.accept (packet_accept)
    aionlmmap.address_text: ipv6_text
    aionlmmap.families.sock_diag.codec: decode_inet_chunk, inet_chunk_json (_speedups_sockdiag.pxi)
    aionlmmap.families.sock_diag.objects: json_texts (_speedups_sockdiag.pxi)
    aionlmmap.drainer:      Drainer._walk_unsolicited, Drainer._release (_speedups_drain.pxi)
    aionlmmap.ring:         TakenBatch.take, TakenBatch.finish (_speedups_drain.pxi)
    aionlmmap.families.rtnl_codec: decode_route (_speedups_routes.pxi)
    aionlmmap.families.rtnl_objects: Route.to_json, Nexthop.to_json (_speedups_routes.pxi)
    aionlmmap.families.rtnl_route_layout: RouteDecoders.walk (_speedups_routes.pxi)
    aionlmmap.backends.uring: UringBackend._reap, UringBackend._provide (_speedups_uring.pxi)

:mod:`aionlmmap._extensions` decides at import whether these are used
(``AIONLMMAP_NO_EXTENSIONS=1`` selects pure Python).

Buffers are read through the buffer protocol (PyBUF_SIMPLE, as
``struct.unpack_from`` reads them) and released before each function
returns or yields: the ring invalidates a frame's memoryviews with
``memoryview.release()``, which fails while an export is held.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memcmp, memset

import struct as _struct

from aionlmmap.errors import DecodeError

cdef extern from *:
    """
    #include <arpa/inet.h>
    #include <structmember.h>
    /* A Message (a tuple subclass, aionlmmap.message.Message) built the way
       CPython's tuple_subtype_new builds one, without the temporary tuple
       that tuple.__new__(Message, (...)) would need. */
    static PyObject *aionlmmap_new_message(PyObject *cls, long type, long flags,
                                           unsigned long seq, unsigned long pid,
                                           Py_ssize_t start, Py_ssize_t end, PyObject *frame)
    {
        PyTypeObject *tp = (PyTypeObject *)cls;
        PyObject *message = tp->tp_alloc(tp, 7);
        PyObject *item;
        if (message == NULL)
            return NULL;
        if ((item = PyLong_FromLong(type)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 0, item);
        if ((item = PyLong_FromLong(flags)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 1, item);
        if ((item = PyLong_FromUnsignedLong(seq)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 2, item);
        if ((item = PyLong_FromUnsignedLong(pid)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 3, item);
        if ((item = PyLong_FromSsize_t(start)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 4, item);
        if ((item = PyLong_FromSsize_t(end)) == NULL) goto fail;
        PyTuple_SET_ITEM(message, 5, item);
        Py_INCREF(frame);
        PyTuple_SET_ITEM(message, 6, frame);
        return message;
    fail:
        Py_DECREF(message);
        return NULL;
    }

    /* object.__new__(cls) for a class object_new would allocate without
       complaint (no abstract methods, no arguments): tp_alloc, every slot
       unset (NULL), as object_new returns it. */
    static PyObject *aionlmmap_alloc(PyObject *cls)
    {
        PyTypeObject *tp = (PyTypeObject *)cls;
        return tp->tp_alloc(tp, 0);
    }

    /* Write slot `offset` of `obj` (a __slots__ member), as CPython's
       member_set does for a T_OBJECT_EX member: the new reference is
       stored and the old one, if any, dropped. */
    static void aionlmmap_set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
    {
        PyObject **slot = (PyObject **)((char *)obj + offset);
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_XDECREF(old);
    }

    /* The offset of the __slots__ member `descriptor` in its instances, or
       -1 when it is not a plain object member. */
    static Py_ssize_t aionlmmap_slot_offset(PyObject *descriptor)
    {
        if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type))
            return -1;
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return -1;
        return member->offset;
    }
    """
    object aionlmmap_alloc(object cls)
    void aionlmmap_set_slot(object obj, Py_ssize_t offset, object value)
    Py_ssize_t aionlmmap_slot_offset(object descriptor)
    object aionlmmap_new_message(object cls, long type, long flags, unsigned long seq, unsigned long pid,
                                 Py_ssize_t start, Py_ssize_t end, object frame)
    uint32_t ntohl(uint32_t)
    uint16_t ntohs(uint16_t)
    const char *inet_ntop(int af, const void *src, char *dst, unsigned int size)
    int AF_INET6
    int INET6_ADDRSTRLEN

cdef enum:
    NLMSG_HDRLEN = 16
    NLA_HDRLEN = 4
    TYPE_MASK = 0x3FFF  # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

#: the core this module is (aionlmmap info)
CORE = "compiled"
#: Which set of twins this build has: aionlmmap._extensions uses the module
#: only when this matches its own number, so a stale build (a .so left from
#: an older checkout) means pure Python, never a missing twin at import.
TWINS_VERSION = 10

# What this module needs from the pure modules (the Message class, the
# reference functions it hands unusual inputs to) is looked up on first
# use, not at import: aionlmmap.message imports this module while it is
# itself being imported, and the twins must work whichever core the pure
# modules selected (the differential tests call both).
cdef object _Message = None
cdef object _pure_header_run = None
cdef object _pure_parse_frame = None


cdef int _bind_message() except -1:
    global _Message, _pure_header_run, _pure_parse_frame
    from aionlmmap import message
    _pure_header_run = message._pure_header_run
    _pure_parse_frame = message._pure_parse_frame
    _Message = message.Message
    return 0


cdef inline uint32_t _u32(const uint8_t *data):
    cdef uint32_t value
    memcpy(&value, data, 4)
    return value


cdef inline uint16_t _u16(const uint8_t *data):
    cdef uint16_t value
    memcpy(&value, data, 2)
    return value


# --- aionlmmap.message ------------------------------------------------------------


def header_run(buffer, Py_ssize_t offset, Py_ssize_t end):
    """Twin of :func:`aionlmmap.message.header_run`: ``(count, header)`` of
    the run of identical nlmsghdrs at ``offset`` (a memcmp per message
    instead of strided array slices)."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef uint32_t length
    cdef Py_ssize_t step, fit, count, position
    if _Message is None:
        _bind_message()
    if offset < 0 or end < 0:
        return _pure_header_run(buffer, offset, end)
    if end - offset < NLMSG_HDRLEN:
        return 0, None
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if end > view.len:
            return _pure_header_run(buffer, offset, end)
        data = <const uint8_t *>view.buf
        length = _u32(data + offset)
        header = (length, _u16(data + offset + 4), _u16(data + offset + 6), _u32(data + offset + 8), _u32(data + offset + 12))
        if length < NLMSG_HDRLEN or offset + <Py_ssize_t>length > end:
            return 0, None
        step = (length + 3) & ~3
        fit = (end - offset - length) // step + 1
        count = 1
        position = offset + step
        while count < fit and memcmp(data + position, data + offset, NLMSG_HDRLEN) == 0:
            count += 1
            position += step
        return count, header
    finally:
        PyBuffer_Release(&view)


def parse_frame(frame, Py_ssize_t length):
    """Twin of :func:`aionlmmap.message.parse_frame`: the messages in the
    first ``length`` bytes of ``frame.buffer`` and the DecodeError of a bad
    spot (or None); never raises on malformed data."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef Py_ssize_t offset = 0
    cdef Py_ssize_t message_end
    cdef uint32_t message_length
    cdef list messages = []
    if _Message is None:
        _bind_message()
    cdef object cls = _Message
    buffer = frame.buffer
    error = None
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if length > view.len:
            # The pure walk turns the short read into its DecodeError.
            return _pure_parse_frame(frame, length)
        data = <const uint8_t *>view.buf
        while offset < length:
            if length - offset < NLMSG_HDRLEN:
                error = DecodeError(f"truncated nlmsghdr: {length - offset} bytes left at offset {offset}, need {NLMSG_HDRLEN}")
                break
            message_length = _u32(data + offset)
            message_end = offset + message_length
            if message_length < NLMSG_HDRLEN:
                error = DecodeError(f"nlmsg_len {message_length} at offset {offset} is below the 16-byte header")
                break
            if message_end > length:
                error = DecodeError(f"nlmsg_len {message_length} at offset {offset} runs past the {length}-byte datagram")
                break
            messages.append(aionlmmap_new_message(
                cls, _u16(data + offset + 4), _u16(data + offset + 6), _u32(data + offset + 8), _u32(data + offset + 12),
                offset + NLMSG_HDRLEN, message_end, frame))
            offset = (message_end + 3) & ~3
    finally:
        PyBuffer_Release(&view)
    return messages, error


def split_dump_chunk(frame, Py_ssize_t length):
    """Twin of :func:`aionlmmap.message.split_dump_chunk`: the compiled
    parse_frame, then one pass over its messages' type and flags in C."""
    messages, error = parse_frame(frame, length)
    cdef list parsed = <list>messages
    cdef Py_ssize_t index, count = len(parsed)
    cdef tuple msg
    cdef bint interrupted = False
    cdef list data, controls
    for index in range(count):
        msg = <tuple>parsed[index]
        if <long>msg[0] < 16 or <long>msg[1] & 0x10:  # NLM_F_DUMP_INTR
            break
    else:
        return parsed, [], False, error
    data = []
    controls = []
    for index in range(count):
        msg = <tuple>parsed[index]
        if <long>msg[0] < 16:
            controls.append(msg)
        else:
            if <long>msg[1] & 0x10:
                interrupted = True
            data.append(msg)
    return data, controls, interrupted, error


# --- aionlmmap.attributes --------------------------------------------------------


cdef object _pure_iter_attributes = None
cdef object _pure_parse_attributes = None


cdef int _bind_attributes() except -1:
    global _pure_iter_attributes, _pure_parse_attributes
    from aionlmmap import attributes
    _pure_iter_attributes = attributes._pure_iter_attributes
    _pure_parse_attributes = attributes._pure_parse_attributes
    return 0


def iter_attributes(buffer, Py_ssize_t start=0, end=None):
    """Twin of :func:`aionlmmap.attributes.iter_attributes` (a generator:
    nothing is read before the first step; the buffer is not held between
    steps)."""
    cdef Py_ssize_t stop, offset, value_end
    cdef Py_buffer view
    cdef uint16_t length, attr_type
    stop = len(buffer) if end is None else end
    if start < 0 or stop < 0 or stop > len(buffer):
        if _pure_iter_attributes is None:
            _bind_attributes()
        yield from _pure_iter_attributes(buffer, start, stop)
        return
    offset = start
    while offset < stop:
        if stop - offset < NLA_HDRLEN:
            return
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
        try:
            if offset + NLA_HDRLEN > view.len:
                raise _struct.error(f"unpack_from requires a buffer of at least {offset + NLA_HDRLEN} bytes for unpacking "
                                    f"{NLA_HDRLEN} bytes at offset {offset} (actual buffer size is {view.len})")
            length = _u16(<const uint8_t *>view.buf + offset)
            attr_type = _u16(<const uint8_t *>view.buf + offset + 2)
        finally:
            PyBuffer_Release(&view)
        if length < NLA_HDRLEN:
            raise DecodeError(f"nla_len {length} at offset {offset} is below the 4-byte attribute header")
        value_end = offset + length
        if value_end > stop:
            raise DecodeError(f"attribute type {attr_type & TYPE_MASK} at offset {offset}: nla_len {length} runs past the end "
                              f"of its parent ({stop - offset} bytes left)")
        yield attr_type & TYPE_MASK, offset + NLA_HDRLEN, value_end
        offset = (value_end + 3) & ~3


def parse_attributes(buffer, Py_ssize_t start=0, end=None):
    """Twin of :func:`aionlmmap.attributes.parse_attributes`: type ->
    (value_start, value_end), the last one winning."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef Py_ssize_t stop, offset, value_end
    cdef uint16_t length, attr_type
    cdef dict table = {}
    stop = len(buffer) if end is None else end
    if _pure_parse_attributes is None:
        _bind_attributes()
    if start < 0 or stop < 0:
        return _pure_parse_attributes(buffer, start, stop)
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if stop > view.len:
            return _pure_parse_attributes(buffer, start, stop)
        data = <const uint8_t *>view.buf
        offset = start
        while stop - offset >= NLA_HDRLEN:
            length = _u16(data + offset)
            attr_type = _u16(data + offset + 2)
            value_end = offset + length
            if length < NLA_HDRLEN or value_end > stop:
                raise DecodeError(
                    f"attribute type {attr_type & TYPE_MASK} at offset {offset}: nla_len {length} "
                    f"{'is below the header' if length < NLA_HDRLEN else 'runs past its parent'} "
                    f"({stop - offset} bytes left)"
                )
            table[attr_type & TYPE_MASK] = (offset + NLA_HDRLEN, value_end)
            offset = (value_end + 3) & ~3
    finally:
        PyBuffer_Release(&view)
    return table


# --- aionlmmap.families.nfqueue --------------------------------------------------


cdef object _pure_decode_packet_header = None


def decode_packet_header(payload):
    """Twin of :func:`aionlmmap.families.nfqueue.decode_packet_header`:
    ``(packet_id, hw_protocol, hook)`` when NFQA_PACKET_HDR comes first, as
    nfqnl_build_packet_message() puts it; anything else goes to the
    reference."""
    cdef Py_buffer view
    cdef const uint8_t *data
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        data = <const uint8_t *>view.buf
        # nfgenmsg (4) + nlattr {11, NFQA_PACKET_HDR} + nfqnl_msg_packet_hdr (7)
        if view.len >= 15 and _u16(data + 4) == 11 and _u16(data + 6) == 1:
            return ntohl(_u32(data + 8)), ntohs(_u16(data + 12)), data[14]
    finally:
        PyBuffer_Release(&view)
    global _pure_decode_packet_header
    if _pure_decode_packet_header is None:
        from aionlmmap.families.netfilter import nfqueue
        _pure_decode_packet_header = nfqueue._pure_decode_packet_header
    return _pure_decode_packet_header(payload)


# nfqueue.Packet and where its constructor's six slots live (Packet has
# __slots__, so each is a member at a fixed offset of the instance).
cdef object _Packet = None
cdef inline object _new_object(object cls):
    """``object.__new__(cls)`` for the plain slotted classes the twins build
    (no abstract methods, no arguments): the type's own allocation, as
    object_new makes it, without a Python call."""
    return aionlmmap_alloc(cls)
cdef Py_ssize_t _slot_queue, _slot_message, _slot_id, _slot_hw_protocol, _slot_hook_number, _slot_state, _slot_verdict
cdef object _UNDECIDED = None
cdef object _DECIDED = None
cdef object _PLAIN_ACCEPT = None
cdef object _pure_packet_of = None
cdef object _pure_accept = None


cdef int _bind_packet() except -1:
    global _Packet, _UNDECIDED, _DECIDED, _PLAIN_ACCEPT, _pure_packet_of, _pure_accept
    global _slot_queue, _slot_message, _slot_id, _slot_hw_protocol, _slot_hook_number, _slot_state, _slot_verdict
    from aionlmmap.families.netfilter import nfqueue
    cdef list offsets = []
    for name in ("_queue", "_message", "id", "hw_protocol", "hook_number", "_state", "_verdict"):
        offset = aionlmmap_slot_offset(nfqueue.Packet.__dict__[name])
        if offset < 0:
            raise TypeError(f"nfqueue.Packet.{name} is not a plain slot: the compiled twin of Queue._packet_of cannot build Packets")
        offsets.append(offset)
    _slot_queue, _slot_message, _slot_id, _slot_hw_protocol, _slot_hook_number, _slot_state, _slot_verdict = offsets
    _UNDECIDED = nfqueue._UNDECIDED
    _DECIDED = nfqueue._DECIDED
    _PLAIN_ACCEPT = nfqueue._PLAIN_ACCEPT
    _pure_packet_of = nfqueue._pure_packet_of
    _pure_accept = nfqueue._pure_accept
    _Packet = nfqueue.Packet
    return 0


def packet_accept(self, *, mark=None, payload=None):
    """Twin of ``aionlmmap.families.nfqueue.Packet.accept`` (installed as
    that method): the plain accept of an undecided packet, which a
    pass-through consumer gives every packet, with the Packet's slots
    written directly; anything else is the reference's."""
    if _Packet is None:
        _bind_packet()
    if type(self) is not _Packet or mark is not None or payload is not None or self._state is not _UNDECIDED:
        return _pure_accept(self, mark=mark, payload=payload)
    aionlmmap_set_slot(self, _slot_verdict, _PLAIN_ACCEPT)
    aionlmmap_set_slot(self, _slot_state, _DECIDED)
    queue = self._queue
    queue._decided_now.append(self)
    if queue._run_key is not _PLAIN_ACCEPT:
        queue._note_run_key(_PLAIN_ACCEPT)
    if not queue._flush_scheduled:
        queue._schedule_flush()


def _packet_of(queue, message):
    """Twin of ``aionlmmap.families.nfqueue.Queue._packet_of`` (installed
    as that method): the Packet in ``message``, or what the pure
    ``_unusual_packet_of`` makes of a message off the fast path.

    The Packet is made as ``Packet.__init__`` makes it (the same six slots,
    nothing else), written straight into its slots: in pure Python the
    constructor call is about 3,000 instructions of a packet's ~28,000."""
    return _packet_of_c(queue, message)


cdef object _packet_of_c(queue, message):
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef Py_ssize_t start
    cdef tuple fields
    cdef int fit = 0  # 1: a packet of this queue; -1: off the common path, ask the reference
    cdef uint32_t packet_id = 0
    cdef uint16_t hw_protocol = 0
    cdef uint8_t hook = 0
    if _Packet is None:
        _bind_packet()
    if not isinstance(message, tuple) or len(<tuple>message) != 7:
        return _pure_packet_of(queue, message)
    fields = <tuple>message
    start = fields[4]
    if fields[0] == 0x0300 and fields[5] - start >= 15:  # NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET
        expected_head = queue._packet_head
        PyObject_GetBuffer(fields[6].buffer, &view, PyBUF_SIMPLE)
        try:
            if start < 0 or start + 15 > view.len or type(expected_head) is not bytes or len(<bytes>expected_head) != 6:
                fit = -1
            else:
                data = <const uint8_t *>view.buf + start
                if memcmp(data + 2, <const char *>expected_head, 6) == 0:
                    fit = 1
                    packet_id = ntohl(_u32(data + 8))
                    hw_protocol = ntohs(_u16(data + 12))
                    hook = data[14]
        finally:
            PyBuffer_Release(&view)
        if fit < 0:
            return _pure_packet_of(queue, message)
        if fit:
            queue.stats.packets += 1
            packet = _new_object(_Packet)
            aionlmmap_set_slot(packet, _slot_queue, queue)
            aionlmmap_set_slot(packet, _slot_message, message)
            aionlmmap_set_slot(packet, _slot_id, packet_id)
            aionlmmap_set_slot(packet, _slot_hw_protocol, hw_protocol)
            aionlmmap_set_slot(packet, _slot_hook_number, hook)
            aionlmmap_set_slot(packet, _slot_state, _UNDECIDED)
            queue._outstanding.append(packet)
            return packet
    return queue._unusual_packet_of(message)


def packet_head(buffer, Py_ssize_t start, bytes expected_head):
    """The nfqueue packet fast path (Queue._packet_of): ``(packet_id,
    hw_protocol, hook)`` of the NFQNL_MSG_PACKET payload at ``start`` when
    its res_id and leading nlattr header equal ``expected_head`` (6 bytes),
    else None. The caller checked that 15 bytes are there."""
    cdef Py_buffer view
    cdef const uint8_t *data
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if start < 0 or start + 15 > view.len or len(expected_head) != 6:
            return None
        data = <const uint8_t *>view.buf + start
        if memcmp(data + 2, <const char *>expected_head, 6) != 0:
            return None
        return ntohl(_u32(data + 8)), ntohs(_u16(data + 12)), data[14]
    finally:
        PyBuffer_Release(&view)


# --- aionlmmap.address_text --------------------------------------------------------


cdef object _pure_ipv6_text = None
cdef dict _ipv6_texts = None  # address_text._IPV6_TEXTS: the reference's cache, shared
cdef Py_ssize_t _ipv6_texts_max = 0


cdef int _bind_ipv6_text() except -1:
    global _pure_ipv6_text, _ipv6_texts, _ipv6_texts_max
    from aionlmmap import address_text
    _ipv6_texts_max = address_text._IPV6_TEXTS_MAX
    _ipv6_texts = address_text._IPV6_TEXTS
    _pure_ipv6_text = address_text._pure_ipv6_text
    return 0


cdef object _ipv6_text_of(object raw):
    """The text of a 16-byte ``raw`` (bytes): from the reference's cache
    (link-locals, gateways and prefixes repeat, and a dict hit costs a
    fraction of inet_ntop's eight sprintf calls), else glibc's inet_ntop,
    kept in the cache under the reference's bound."""
    cdef char text[64]
    found = _ipv6_texts.get(raw)
    if found is not None:
        return found
    inet_ntop(AF_INET6, <const char *>(<bytes>raw), text, sizeof(text))
    result = text.decode("ascii")
    if len(_ipv6_texts) < _ipv6_texts_max:
        _ipv6_texts[raw] = result
    return result


def ipv6_text(raw):
    """Twin of :func:`aionlmmap.address_text.ipv6_text`:
    ``inet_ntop(AF_INET6, raw)``, here glibc's own, which is what ``ip``
    calls (the reference re-implements it), with the reference's cache."""
    if _ipv6_texts is None:
        _bind_ipv6_text()
    if type(raw) is not bytes or len(<bytes>raw) != 16:
        return _pure_ipv6_text(raw)
    return _ipv6_text_of(raw)


include "_speedups_drain.pxi"
# --- aionlmmap.families.sock_diag.codec ----------------------------------------
include "_speedups_sockdiag.pxi"
include "_speedups_routes.pxi"
include "_speedups_uring.pxi"
include "_speedups_flatten.pxi"
