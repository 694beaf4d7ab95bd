# Included at the end of _speedups.pyx (one module, one build): the twin of
# aionlmmap.families.sock_diag.codec.decode_inet_chunk.
#
# A dump of 10,000 TCP sockets spends most of its Python time here: one
# inet_diag_msg unpacked into 15 values, two address texts looked up and one
# InetSocket (a 17-item named tuple) made per socket. Here the fields are
# read in place, the addresses compared with the previous socket's bytes
# (a dump repeats a few local and peer addresses), and the tuple is filled
# the way tuple_subtype_new fills one.

cdef extern from *:
    """
    /* An InetSocket (a NamedTuple of 17 items) without the temporary tuple
       of tuple.__new__(InetSocket, (...)): allocated with the subtype's
       tp_alloc, as CPython's tuple_subtype_new does, then filled. The
       items are new references except the borrowed address texts. */
    static PyObject *aionlmmap_new_inet(PyObject *cls, long family, PyObject *protocol, long state,
                                        PyObject *local, long local_port, PyObject *peer, long peer_port,
                                        unsigned long recv_q, unsigned long send_q, unsigned long inode,
                                        unsigned long uid, unsigned long ifindex, unsigned long long cookie,
                                        long timer, long retrans, unsigned long expires)
    {
        PyTypeObject *tp = (PyTypeObject *)cls;
        PyObject *sock = tp->tp_alloc(tp, 17);
        PyObject *item;
        if (sock == NULL)
            return NULL;
    #define AIONLMMAP_SET(index, make) if ((item = (make)) == NULL) goto fail; PyTuple_SET_ITEM(sock, index, item);
        AIONLMMAP_SET(0, PyLong_FromLong(family))
        Py_INCREF(protocol); PyTuple_SET_ITEM(sock, 1, protocol);
        AIONLMMAP_SET(2, PyLong_FromLong(state))
        Py_INCREF(local); PyTuple_SET_ITEM(sock, 3, local);
        AIONLMMAP_SET(4, PyLong_FromLong(local_port))
        Py_INCREF(peer); PyTuple_SET_ITEM(sock, 5, peer);
        AIONLMMAP_SET(6, PyLong_FromLong(peer_port))
        AIONLMMAP_SET(7, PyLong_FromUnsignedLong(recv_q))
        AIONLMMAP_SET(8, PyLong_FromUnsignedLong(send_q))
        AIONLMMAP_SET(9, PyLong_FromUnsignedLong(inode))
        AIONLMMAP_SET(10, PyLong_FromUnsignedLong(uid))
        AIONLMMAP_SET(11, PyLong_FromUnsignedLong(ifindex))
        AIONLMMAP_SET(12, PyLong_FromUnsignedLongLong(cookie))
        AIONLMMAP_SET(13, PyLong_FromLong(timer))
        AIONLMMAP_SET(14, PyLong_FromLong(retrans))
        AIONLMMAP_SET(15, PyLong_FromUnsignedLong(expires))
    #undef AIONLMMAP_SET
        Py_INCREF(Py_None); PyTuple_SET_ITEM(sock, 16, Py_None);
        return sock;
    fail:
        Py_DECREF(sock);
        return NULL;
    }
    """
    object aionlmmap_new_inet(object cls, long family, object protocol, long state, object local, long local_port,
                              object peer, long peer_port, unsigned long recv_q, unsigned long send_q,
                              unsigned long inode, unsigned long uid, unsigned long ifindex,
                              unsigned long long cookie, long timer, long retrans, unsigned long expires)

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t

cdef enum:
    SOCK_DIAG_BY_FAMILY = 20
    TCPDIAG_GETSOCK = 18
    INET_DIAG_MSG_SIZE = 72
    SOCKDIAG_AF_INET = 2
    SOCKDIAG_AF_INET6 = 10

cdef object _InetSocket = None
cdef object _pure_decode_inet_chunk = None


cdef int _bind_sockdiag() except -1:
    global _InetSocket, _pure_decode_inet_chunk
    from aionlmmap.families.sock_diag import codec, objects
    _pure_decode_inet_chunk = codec._pure_decode_inet_chunk
    _InetSocket = objects.InetSocket
    return 0


cdef inline object _socket_address_text(object text, object table, int family, const uint8_t *raw):
    """text(family, raw) through its cache dict, as the reference's
    ``table.get(raw) or text(family, raw)``."""
    key = PyBytes_FromStringAndSize(<const char *>raw, 16)
    cdef PyObject *found = PyDict_GetItem(table, key)
    if found != NULL and <object>found:
        return <object>found
    return text(family, key)


def decode_inet_chunk(buffer, Py_ssize_t end, protocol, counts, text):
    """Twin of :func:`aionlmmap.families.sock_diag.codec.decode_inet_chunk`:
    the InetSockets of a dump chunk ``buffer[:end]``, with the same counts
    of malformed messages and the same address cache (``text``)."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef const uint8_t *message
    cdef Py_ssize_t offset = 0
    cdef Py_ssize_t step
    cdef uint32_t length
    cdef uint16_t message_type
    cdef uint64_t cookie
    cdef int family
    cdef int last_family = -1
    cdef uint8_t last_src[16]
    cdef uint8_t last_dst[16]
    cdef long malformed = 0
    cdef list out = []
    local = None
    peer = None
    if _InetSocket is None:
        _bind_sockdiag()
    cls = _InetSocket
    v4 = text.v4
    v6 = text.v6
    if end < 0:
        return _pure_decode_inet_chunk(buffer, end, protocol, counts, text)
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    if end > view.len:
        # A chunk past its buffer: the reference's reading of it decides.
        PyBuffer_Release(&view)
        return _pure_decode_inet_chunk(buffer, end, protocol, counts, text)
    try:
        data = <const uint8_t *>view.buf
        while offset < end:
            if end - offset < NLMSG_HDRLEN:
                malformed += 1
                break
            length = _u32(data + offset)
            if length < NLMSG_HDRLEN or offset + <Py_ssize_t>length > end:
                malformed += 1
                break
            step = (length + 3) & ~3
            message = data + offset + NLMSG_HDRLEN
            message_type = _u16(data + offset + 4)
            if message_type != SOCK_DIAG_BY_FAMILY and message_type != TCPDIAG_GETSOCK:
                offset += step
                continue
            if length < NLMSG_HDRLEN + INET_DIAG_MSG_SIZE:
                malformed += 1
                offset += step
                continue
            family = message[0]
            if family != SOCKDIAG_AF_INET and family != SOCKDIAG_AF_INET6:
                malformed += 1
                offset += step
                continue
            # struct inet_diag_msg: family, state, timer, retrans (u8 each),
            # then inet_diag_sockid: sport, dport (big-endian), src[16],
            # dst[16], if, cookie[2]; then expires, rqueue, wqueue, uid, inode.
            if family != last_family or memcmp(message + 8, last_src, 16) != 0:
                local = _socket_address_text(text, v4 if family == SOCKDIAG_AF_INET else v6, family, message + 8)
                memcpy(last_src, message + 8, 16)
            if family != last_family or memcmp(message + 24, last_dst, 16) != 0:
                peer = _socket_address_text(text, v4 if family == SOCKDIAG_AF_INET else v6, family, message + 24)
                memcpy(last_dst, message + 24, 16)
            last_family = family
            memcpy(&cookie, message + 44, 8)
            out.append(aionlmmap_new_inet(
                cls, family, protocol, message[1], local, ntohs(_u16(message + 4)), peer, ntohs(_u16(message + 6)),
                _u32(message + 56), _u32(message + 60), _u32(message + 68), _u32(message + 64), _u32(message + 40),
                cookie, message[2], message[3], _u32(message + 52)))
            offset += step
    finally:
        PyBuffer_Release(&view)
    if malformed:
        counts.malformed += malformed
    return out


# --- json_texts ----------------------------------------------------------------

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdio cimport snprintf

cdef object _pure_json_text = None
cdef object _json_words = None


cdef int _bind_sockdiag_json() except -1:
    global _pure_json_text, _json_words
    from aionlmmap.families.sock_diag import objects
    _json_words = objects._json_words
    _pure_json_text = objects.json_text
    return 0


cdef inline bint _int_value(object value, long long *out):
    """The value of an int that fits a long long (else False: the caller
    hands the socket to the reference)."""
    cdef int overflow = 0
    if not isinstance(value, int):
        return False
    out[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return overflow == 0


def json_texts(list socks):
    """Twin of :func:`aionlmmap.families.sock_diag.objects.json_texts`: the
    compact JSON text of each socket, written with one snprintf per socket
    (the reference %-formats a template). A socket off the fast path
    (ifindex, timer or extensions set, a value of another type) gets the
    reference's :func:`json_text`."""
    cdef char text[1024]
    cdef long long values[7]
    cdef const char *local
    cdef const char *peer
    cdef const char *head_text = NULL
    cdef const char *family_text = NULL
    cdef Py_ssize_t local_size, peer_size
    cdef long long key_protocol = -1, key_state = -1, key_family = -1
    cdef long long protocol = 0, state = 0, family = 0
    cdef int written
    cdef list out = []
    cdef tuple sock
    head = None
    family_word = None
    if _json_words is None:
        _bind_sockdiag_json()
    if _InetSocket is None:
        _bind_sockdiag()
    for item in socks:
        if type(item) is not _InetSocket or len(<tuple>item) != 17:
            out.append(_pure_json_text(item))
            continue
        sock = <tuple>item
        if (sock[11] or sock[13] or sock[16]
                or not _int_value(sock[1], &protocol) or not _int_value(sock[2], &state) or not _int_value(sock[0], &family)
                or not _int_value(sock[7], &values[0]) or not _int_value(sock[8], &values[1]) or not _int_value(sock[4], &values[2])
                or not _int_value(sock[6], &values[3]) or not _int_value(sock[9], &values[4]) or not _int_value(sock[10], &values[5])
                or not _int_value(sock[12], &values[6])
                or type(sock[3]) is not str or type(sock[5]) is not str):
            out.append(_pure_json_text(item))
            continue
        if protocol != key_protocol or state != key_state or family != key_family:
            head_word, family_str = _json_words(sock[1], sock[2], sock[0])
            head = head_word.encode("utf-8")
            family_word = family_str.encode("utf-8")
            head_text = <const char *>(<bytes>head)
            family_text = <const char *>(<bytes>family_word)
            key_protocol, key_state, key_family = protocol, state, family
        try:
            local = PyUnicode_AsUTF8AndSize(sock[3], &local_size)
            peer = PyUnicode_AsUTF8AndSize(sock[5], &peer_size)
        except UnicodeEncodeError:  # a lone surrogate: the reference's %s keeps it
            out.append(_pure_json_text(item))
            continue
        written = snprintf(text, sizeof(text),
                           b'%s,"recv_q":%lld,"send_q":%lld,"local_address":"%s","local_port":%lld,"peer_address":"%s","peer_port":%lld,"family":"%s","inode":%lld,"uid":%lld,"cookie":%lld}',
                           head_text, values[0], values[1], local, values[2], peer, values[3], family_text, values[4], values[5], values[6])
        if written < 0 or written >= <int>sizeof(text) or <Py_ssize_t>len(local) != local_size or <Py_ssize_t>len(peer) != peer_size:
            out.append(_pure_json_text(item))
            continue
        out.append(PyUnicode_DecodeUTF8(text, written, NULL))
    return out


# --- inet_chunk_json ------------------------------------------------------------

from cpython.mem cimport PyMem_Free, PyMem_Realloc

cdef object _pure_inet_chunk_json = None


cdef int _bind_sockdiag_chunk_json() except -1:
    global _pure_inet_chunk_json
    from aionlmmap.families.sock_diag import codec
    _pure_inet_chunk_json = codec._pure_inet_chunk_json
    return 0


cdef struct _JsonOut:
    char *data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _json_reserve(_JsonOut *out, Py_ssize_t more) except -1:
    cdef Py_ssize_t capacity
    cdef char *grown
    if out.size + more <= out.capacity:
        return 0
    capacity = out.capacity * 2
    if capacity < out.size + more:
        capacity = out.size + more
    grown = <char *>PyMem_Realloc(out.data, capacity)
    if grown == NULL:
        raise MemoryError()
    out.data = grown
    out.capacity = capacity
    return 0


cdef inline char *_json_put(char *at, const char *text, Py_ssize_t size):
    memcpy(at, text, size)
    return at + size


cdef inline char *_json_uint(char *at, unsigned long long value):
    """``%d`` of an unsigned value (at most 20 digits)."""
    cdef char digits[20]
    cdef int count = 0
    while True:
        digits[count] = <char>(48 + value % 10)
        count += 1
        value //= 10
        if value == 0:
            break
    while count:
        count -= 1
        at[0] = digits[count]
        at += 1
    return at


def inet_chunk_json(buffer, Py_ssize_t end, protocol, counts, text):
    """Twin of :func:`aionlmmap.families.sock_diag.codec.inet_chunk_json`:
    the chunk's IPv4 and IPv6 sockets as comma-joined compact JSON texts
    (UTF-8 bytes, one per family), written straight from each
    inet_diag_msg into two buffers: no InetSocket, no str per socket. The
    walk is decode_inet_chunk's twin's; the fixed words (netid, state,
    family) come from the reference's templates. Anything off the common
    path (an address text that is not a str, or one UTF-8 cannot encode)
    is handed to the reference for the whole chunk: the malformed count is
    only added at the end, and the address cache holds what the reference
    would put in it."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef const uint8_t *message
    cdef Py_ssize_t offset = 0
    cdef Py_ssize_t step
    cdef uint32_t length
    cdef uint16_t message_type
    cdef uint64_t cookie
    cdef uint32_t ifindex
    cdef int family
    cdef int state
    cdef int last_family = -1
    cdef int last_key = -1
    cdef int key
    cdef uint8_t last_src[16]
    cdef uint8_t last_dst[16]
    cdef long malformed = 0
    cdef const char *head_text = NULL
    cdef const char *family_text = NULL
    cdef const char *local_text = NULL
    cdef const char *peer_text = NULL
    cdef Py_ssize_t head_size = 0, family_size = 0, local_size = 0, peer_size = 0
    cdef _JsonOut outs[2]
    cdef _JsonOut *out
    cdef char *at
    cdef bint fallback = False
    local = None
    peer = None
    head = None
    family_word = None
    result = None
    if _json_words is None:
        _bind_sockdiag_json()
    if _pure_inet_chunk_json is None:
        _bind_sockdiag_chunk_json()
    v4 = text.v4
    v6 = text.v6
    words = {}
    if end < 0:
        return _pure_inet_chunk_json(buffer, end, protocol, counts, text)
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    if end > view.len:
        PyBuffer_Release(&view)
        return _pure_inet_chunk_json(buffer, end, protocol, counts, text)
    memset(outs, 0, sizeof(outs))
    try:
        data = <const uint8_t *>view.buf
        while offset < end:
            if end - offset < NLMSG_HDRLEN:
                malformed += 1
                break
            length = _u32(data + offset)
            if length < NLMSG_HDRLEN or offset + <Py_ssize_t>length > end:
                malformed += 1
                break
            step = (length + 3) & ~3
            message = data + offset + NLMSG_HDRLEN
            message_type = _u16(data + offset + 4)
            if message_type != SOCK_DIAG_BY_FAMILY and message_type != TCPDIAG_GETSOCK:
                offset += step
                continue
            if length < NLMSG_HDRLEN + INET_DIAG_MSG_SIZE:
                malformed += 1
                offset += step
                continue
            family = message[0]
            if family != SOCKDIAG_AF_INET and family != SOCKDIAG_AF_INET6:
                malformed += 1
                offset += step
                continue
            state = message[1]
            # Address texts as decode_inet_chunk's twin finds them; a text
            # that is not a str, or not encodable, is the reference's case.
            if family != last_family or memcmp(message + 8, last_src, 16) != 0:
                local = _socket_address_text(text, v4 if family == SOCKDIAG_AF_INET else v6, family, message + 8)
                memcpy(last_src, message + 8, 16)
                if type(local) is not str:
                    fallback = True
                    break
                local_text = PyUnicode_AsUTF8AndSize(local, &local_size)
            if family != last_family or memcmp(message + 24, last_dst, 16) != 0:
                peer = _socket_address_text(text, v4 if family == SOCKDIAG_AF_INET else v6, family, message + 24)
                memcpy(last_dst, message + 24, 16)
                if type(peer) is not str:
                    fallback = True
                    break
                peer_text = PyUnicode_AsUTF8AndSize(peer, &peer_size)
            last_family = family
            key = state << 8 | family
            if key != last_key:
                found = words.get(key)
                if found is None:
                    head_word, family_str = _json_words(protocol, state, family)
                    found = words[key] = ((<str>head_word).encode("utf-8"), (<str>family_str).encode("utf-8"))
                head, family_word = found
                head_text = <const char *>(<bytes>head)
                head_size = len(<bytes>head)
                family_text = <const char *>(<bytes>family_word)
                family_size = len(<bytes>family_word)
                last_key = key
            out = &outs[0] if family == SOCKDIAG_AF_INET else &outs[1]
            if out.capacity == 0:
                _json_reserve(out, 4096 + end * 2)
            _json_reserve(out, head_size + family_size + local_size + peer_size + 512)
            at = out.data + out.size
            if out.size:
                at[0] = b','
                at += 1
            memcpy(&cookie, message + 44, 8)
            ifindex = _u32(message + 40)
            # the template of objects.open_template, then to_json's extra keys
            at = _json_put(at, head_text, head_size)
            at = _json_put(at, b',"recv_q":', 10)
            at = _json_uint(at, _u32(message + 56))
            at = _json_put(at, b',"send_q":', 10)
            at = _json_uint(at, _u32(message + 60))
            at = _json_put(at, b',"local_address":"', 18)
            at = _json_put(at, local_text, local_size)
            at = _json_put(at, b'","local_port":', 15)
            at = _json_uint(at, ntohs(_u16(message + 4)))
            at = _json_put(at, b',"peer_address":"', 17)
            at = _json_put(at, peer_text, peer_size)
            at = _json_put(at, b'","peer_port":', 14)
            at = _json_uint(at, ntohs(_u16(message + 6)))
            at = _json_put(at, b',"family":"', 11)
            at = _json_put(at, family_text, family_size)
            at = _json_put(at, b'","inode":', 10)
            at = _json_uint(at, _u32(message + 68))
            at = _json_put(at, b',"uid":', 7)
            at = _json_uint(at, _u32(message + 64))
            at = _json_put(at, b',"cookie":', 10)
            at = _json_uint(at, cookie)
            if ifindex:
                at = _json_put(at, b',"ifindex":', 11)
                at = _json_uint(at, ifindex)
            if message[2]:
                at = _json_put(at, b',"timer":', 9)
                at = _json_uint(at, message[2])
                at = _json_put(at, b',"expires":', 11)
                at = _json_uint(at, _u32(message + 52))
                at = _json_put(at, b',"retrans":', 11)
                at = _json_uint(at, message[3])
            at[0] = b'}'
            at += 1
            out.size = at - out.data
            offset += step
        if not fallback:
            result = (PyBytes_FromStringAndSize(outs[0].data, outs[0].size), PyBytes_FromStringAndSize(outs[1].data, outs[1].size))
    except UnicodeError:
        fallback = True
    finally:
        PyBuffer_Release(&view)
        PyMem_Free(outs[0].data)
        PyMem_Free(outs[1].data)
    if fallback:
        return _pure_inet_chunk_json(buffer, end, protocol, counts, text)
    if malformed:
        counts.malformed += malformed
    return result
