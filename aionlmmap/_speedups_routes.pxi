# Included at the end of _speedups.pyx: the route twins.
#
#   aionlmmap.families.rtnl_codec:   decode_route
#   aionlmmap.families.rtnl_objects: Route.to_json (route_to_json), Nexthop.to_json (nexthop_to_json)
#   aionlmmap.families.rtnl_route_layout: RouteDecoders.walk (route_walk)
#
# The pure functions are the reference. A twin handles the routes the kernel
# sends in a dump (fib_dump_info() / rt6_fill_node(): rtmsg, then RTA_TABLE,
# RTA_DST, RTA_SRC, RTA_GATEWAY, RTA_OIF, RTA_PRIORITY, RTA_PREFSRC, RTA_PREF,
# RTA_CACHEINFO, RTA_METRICS and RTA_MULTIPATH of plain gateways) and hands
# every other message, as soon as it sees something off that path (a bad
# nla_len, an address of another size, RTA_VIA, RTA_ENCAP, RTA_NH_ID, ...),
# to the pure function, which then decodes it from the start: what such a
# message gives, or raises, is the reference's by construction.
#
# Route and Nexthop are attrs slotted classes: the twins write and read
# their slots at the members' offsets (as _packet_of writes a Packet's),
# which is what the pure decoders do through _RouteUnderConstruction,
# without a Python call per field.

from cpython.ref cimport PyObject
from libc.stdint cimport int32_t
from cpython.unicode cimport PyUnicode_FromStringAndSize
from cpython.bytes cimport PyBytes_FromStringAndSize

cdef extern from *:
    """
    /* Slot `offset` of `obj` (borrowed), or NULL when it was never set. */
    static PyObject *aionlmmap_get_slot(PyObject *obj, Py_ssize_t offset)
    {
        return *(PyObject **)((char *)obj + offset);
    }

    /* The dotted quad of 4 bytes into `text` (at least 16 bytes); its length. */
    static Py_ssize_t aionlmmap_dotted_quad(const unsigned char *raw, char *text)
    {
        char *out = text;
        for (int i = 0; i < 4; i++) {
            unsigned int octet = raw[i];
            if (octet >= 100) { *out++ = '0' + octet / 100; octet %= 100; *out++ = '0' + octet / 10; *out++ = '0' + octet % 10; }
            else if (octet >= 10) { *out++ = '0' + octet / 10; *out++ = '0' + octet % 10; }
            else *out++ = '0' + octet;
            if (i < 3) *out++ = '.';
        }
        return out - text;
    }
    """
    PyObject *aionlmmap_get_slot(object obj, Py_ssize_t offset)
    Py_ssize_t aionlmmap_dotted_quad(const uint8_t *raw, char *text)

cdef enum:
    RTMSG_SIZE = 12
    RTNEXTHOP_SIZE = 8
    RTM_NEWROUTE_TYPE = 24
    # rtnetlink attribute numbers (linux/rtnetlink.h)
    RTA_DST_ = 1
    RTA_SRC_ = 2
    RTA_OIF_ = 4
    RTA_GATEWAY_ = 5
    RTA_PRIORITY_ = 6
    RTA_PREFSRC_ = 7
    RTA_METRICS_ = 8
    RTA_MULTIPATH_ = 9
    RTA_CACHEINFO_ = 12
    RTA_TABLE_ = 15
    RTA_PREF_ = 20
    CACHEINFO_SIZE = 32
    # Route.to_json's defaults (rtnl_constants)
    AF_INET_ = 2
    AF_INET6_ = 10
    RTN_UNICAST_ = 1
    RTPROT_BOOT_ = 3
    RT_TABLE_MAIN_ = 254
    RTM_F_CLONED_ = 0x200

#: Route's fields in attrs order (rtnl_objects._ROUTE_FIELDS) and Nexthop's
cdef enum:
    R_FAMILY, R_TABLE, R_DST, R_DST_LEN, R_TYPE, R_PROTOCOL, R_SCOPE, R_FLAGS, R_TOS, R_PRIORITY, R_GATEWAY, R_OIF, R_DEV, R_PREFSRC, R_SRC, R_SRC_LEN, R_PREF, R_NEXTHOPS, R_EXTRA, ROUTE_FIELD_COUNT
cdef enum:
    N_IFINDEX, N_GATEWAY, N_WEIGHT, N_FLAGS, N_DEV, N_VIA, N_FLOW, NEXTHOP_FIELD_COUNT

_ROUTE_FIELD_NAMES = ("family", "table", "dst", "dst_len", "type", "protocol", "scope", "flags", "tos", "priority", "gateway", "oif",
                      "dev", "prefsrc", "src", "src_len", "pref", "nexthops", "extra")
_NEXTHOP_FIELD_NAMES = ("ifindex", "gateway", "weight", "flags", "dev", "via", "flow")

cdef object _Route = None
cdef object _Nexthop = None
cdef Py_ssize_t _route_slot[ROUTE_FIELD_COUNT]
cdef Py_ssize_t _nexthop_slot[NEXTHOP_FIELD_COUNT]
cdef object _pure_decode_route = None
cdef object _pure_route_to_json = None
cdef object _pure_nexthop_to_json = None
cdef object _pure_route_walk = None
cdef object _route_metrics = None
cdef object _route_extra = None
cdef object _route_flag_names = None
cdef object _late_keys = None
cdef dict _layout_signatures = None
cdef object _layout_learn = None
cdef Py_ssize_t _max_layouts = 0, _max_variants = 0
cdef object _PROTOCOL_TEXT = None
cdef object _SCOPE_TEXT = None
cdef object _ROUTE_TYPE_NAMES = None
cdef object _TABLE_NAMES = None
cdef object _ROUTE_PREF_NAMES = None
cdef long _user_hz = 100


cdef int _bind_routes() except -1:
    global _Route, _Nexthop, _pure_decode_route, _pure_route_to_json, _pure_nexthop_to_json, _pure_route_walk, _route_metrics
    global _route_extra, _route_flag_names, _late_keys, _layout_signatures, _layout_learn, _max_layouts, _max_variants, _PROTOCOL_TEXT, _SCOPE_TEXT, _ROUTE_TYPE_NAMES
    global _TABLE_NAMES, _ROUTE_PREF_NAMES, _user_hz
    from aionlmmap.families.rtnl import codec as rtnl_codec, constants as rtnl_constants, objects as rtnl_objects, route_layout as rtnl_route_layout, route_values as rtnl_route_values
    cdef Py_ssize_t index, offset
    if tuple(rtnl_objects._ROUTE_FIELDS) != _ROUTE_FIELD_NAMES:
        raise TypeError(f"Route's fields {rtnl_objects._ROUTE_FIELDS} are not the ones the compiled route twins know: rebuild the extension")
    for index, name in enumerate(_ROUTE_FIELD_NAMES):
        offset = aionlmmap_slot_offset(rtnl_objects.Route.__dict__[name])
        if offset < 0:
            raise TypeError(f"Route.{name} is not a plain slot: the compiled route twins cannot build Routes")
        _route_slot[index] = offset
    for index, name in enumerate(_NEXTHOP_FIELD_NAMES):
        offset = aionlmmap_slot_offset(rtnl_objects.Nexthop.__dict__[name])
        if offset < 0:
            raise TypeError(f"Nexthop.{name} is not a plain slot: the compiled route twins cannot build Nexthops")
        _nexthop_slot[index] = offset
    _pure_decode_route = rtnl_codec._pure_decode_route
    _pure_route_to_json = rtnl_objects._pure_route_to_json
    _pure_nexthop_to_json = rtnl_objects._pure_nexthop_to_json
    _pure_route_walk = rtnl_route_layout._pure_route_walk
    _route_metrics = rtnl_route_values.metrics
    _user_hz = rtnl_route_values.USER_HZ
    _route_extra = rtnl_objects.route_extra
    _route_flag_names = rtnl_objects.route_flag_names
    _late_keys = rtnl_objects._late_keys
    _layout_signatures = rtnl_route_layout._signatures
    _max_layouts = rtnl_route_layout._MAX_LAYOUTS
    _max_variants = rtnl_route_layout._MAX_VARIANTS
    _layout_learn = rtnl_route_layout.learn
    _PROTOCOL_TEXT = rtnl_objects._PROTOCOL_TEXT
    _SCOPE_TEXT = rtnl_objects._SCOPE_TEXT
    _ROUTE_TYPE_NAMES = rtnl_constants.ROUTE_TYPE_NAMES
    _TABLE_NAMES = rtnl_constants.TABLE_NAMES
    _ROUTE_PREF_NAMES = rtnl_constants.ROUTE_PREF_NAMES
    _Nexthop = rtnl_objects.Nexthop
    _Route = rtnl_objects.Route
    return 0


cdef object _address_text(const uint8_t *raw, Py_ssize_t size):
    """format_address() of a 4- or 16-byte address (the caller checked the size)."""
    cdef char text[64]
    cdef Py_ssize_t length
    if size == 4:
        length = aionlmmap_dotted_quad(raw, text)
        return PyUnicode_FromStringAndSize(text, length)
    if _ipv6_texts is None:
        _bind_ipv6_text()
    return _ipv6_text_of(PyBytes_FromStringAndSize(<const char *>raw, 16))


cdef inline object _name_of(names, object ifindex):
    """``names.get(ifindex) if names else None``"""
    if names is None or not names:
        return None
    if type(names) is dict:
        return (<dict>names).get(ifindex)
    return names.get(ifindex)


cdef object _new_nexthop(long ifindex, object gateway, long weight, long flags, object dev):
    nexthop = _new_object(_Nexthop)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_IFINDEX], ifindex)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_GATEWAY], gateway)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_WEIGHT], weight)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_FLAGS], flags)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_DEV], dev)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_VIA], None)
    aionlmmap_set_slot(nexthop, _nexthop_slot[N_FLOW], None)
    return nexthop


cdef object _nexthops_at(const uint8_t *data, Py_ssize_t start, Py_ssize_t end, names):
    """_decode_nexthops() of an RTA_MULTIPATH whose nexthops carry at most
    an RTA_GATEWAY each (fib_add_multipath_nexthop() of plain gateways), or
    None for anything else (the reference decodes it)."""
    cdef Py_ssize_t offset = start, inner, stop, gateway_start, gateway_size
    cdef uint16_t length, attr_length, attr_type
    cdef int32_t ifindex
    cdef list nexthops = []
    while end - offset >= RTNEXTHOP_SIZE:
        length = _u16(data + offset)
        if length < RTNEXTHOP_SIZE or offset + length > end:
            return None
        memcpy(&ifindex, data + offset + 4, 4)
        stop = offset + length
        inner = offset + RTNEXTHOP_SIZE
        gateway_size = 0
        gateway_start = 0
        while stop - inner >= NLA_HDRLEN:
            attr_length = _u16(data + inner)
            attr_type = _u16(data + inner + 2) & TYPE_MASK
            if attr_length < NLA_HDRLEN or inner + attr_length > stop:
                return None
            if attr_type == RTA_GATEWAY_:
                gateway_start = inner + NLA_HDRLEN
                gateway_size = attr_length - NLA_HDRLEN
                if gateway_size != 4 and gateway_size != 16:
                    return None
            elif attr_type == 18 or attr_type == 11:  # RTA_VIA, RTA_FLOW
                return None
            inner = (inner + attr_length + 3) & ~3
        ifindex_object = ifindex
        nexthops.append(_new_nexthop(ifindex, _address_text(data + gateway_start, gateway_size) if gateway_size else None,
                                     data[offset + 3] + 1, data[offset + 2], _name_of(names, ifindex_object)))
        offset += (length + 3) & ~3
    return tuple(nexthops)


cdef object _decode_route_at(buffer, const uint8_t *data, Py_ssize_t start, Py_ssize_t end, names):
    """The Route of the payload ``data[start:end]`` (inside ``buffer``, which
    the caller holds), or the reference's answer for one off the path."""
    cdef Py_ssize_t offset, value, value_end, size, length_of_payload = end - start
    cdef uint16_t length, raw_type, attr_type
    cdef uint32_t table
    cdef int32_t ticks = 0
    cdef uint32_t cache_error = 0
    cdef bint cacheinfo = False
    cdef Py_ssize_t multipath_at = -1, multipath_end = 0
    dst = src = gateway = prefsrc = oif = priority = pref = None
    metrics = ()
    if length_of_payload < RTMSG_SIZE:
        return _pure_decode_route(buffer, start, end, names)
    table = data[start + 4]
    offset = start + RTMSG_SIZE
    while end - offset >= NLA_HDRLEN:
        length = _u16(data + offset)
        raw_type = _u16(data + offset + 2)
        value = offset + NLA_HDRLEN
        value_end = offset + length
        if length < NLA_HDRLEN or value_end > end:
            return _pure_decode_route(buffer, start, end, names)
        size = length - NLA_HDRLEN
        attr_type = raw_type & TYPE_MASK
        if attr_type == RTA_DST_ or attr_type == RTA_GATEWAY_ or attr_type == RTA_PREFSRC_ or attr_type == RTA_SRC_:
            if size != 4 and size != 16:
                return _pure_decode_route(buffer, start, end, names)
            text = _address_text(data + value, size)
            if attr_type == RTA_DST_:
                dst = text
            elif attr_type == RTA_GATEWAY_:
                gateway = text
            elif attr_type == RTA_PREFSRC_:
                prefsrc = text
            else:
                src = text
        elif attr_type == RTA_TABLE_ or attr_type == RTA_OIF_ or attr_type == RTA_PRIORITY_:
            if size < 4:
                return _pure_decode_route(buffer, start, end, names)
            if attr_type == RTA_TABLE_:
                table = _u32(data + value)
            elif attr_type == RTA_OIF_:
                oif = _u32(data + value)
            else:
                priority = _u32(data + value)
        elif attr_type == RTA_PREF_:
            if size < 1:
                return _pure_decode_route(buffer, start, end, names)
            pref = data[value]
        elif attr_type == RTA_CACHEINFO_:
            if size >= CACHEINFO_SIZE:
                if _u32(data + value) or _u32(data + value + 4) or _u32(data + value + 16):
                    # a cached route's dst counters (users, age, used):
                    # the reference's RouteExtra case
                    return _pure_decode_route(buffer, start, end, names)
                memcpy(&ticks, data + value + 8, 4)
                cache_error = _u32(data + value + 12)
                cacheinfo = True
        elif attr_type == RTA_METRICS_:
            metrics = _route_metrics(data[value:value_end])
        elif attr_type == RTA_MULTIPATH_:
            multipath_at = value
            multipath_end = value_end
        elif (attr_type == 30 or attr_type == 18 or attr_type == 11 or attr_type == 16 or attr_type == 25
              or attr_type == 22 or attr_type == 21 or attr_type == 3):
            # RTA_NH_ID, RTA_VIA, RTA_FLOW, RTA_MARK, RTA_UID, RTA_ENCAP,
            # RTA_ENCAP_TYPE, RTA_IIF: the reference's RouteExtra cases
            return _pure_decode_route(buffer, start, end, names)
        offset = (value_end + 3) & ~3
    nexthops = ()
    if multipath_at >= 0:
        nexthops = _nexthops_at(data, multipath_at, multipath_end, names)
        if nexthops is None:
            return _pure_decode_route(buffer, start, end, names)
    expires = error = None
    if cacheinfo:
        if ticks:
            # expires_seconds(): rta_expires / hz as C divides (toward zero)
            expires = <long long>ticks / _user_hz
        if cache_error:
            error = cache_error
    extra = None
    if expires is not None or error is not None or metrics:
        extra = _route_extra(None, None, None, None, None, expires, error, metrics, None, ())
    route = _new_object(_Route)
    aionlmmap_set_slot(route, _route_slot[R_FAMILY], data[start])
    aionlmmap_set_slot(route, _route_slot[R_TABLE], table)
    aionlmmap_set_slot(route, _route_slot[R_DST], dst)
    aionlmmap_set_slot(route, _route_slot[R_DST_LEN], data[start + 1])
    aionlmmap_set_slot(route, _route_slot[R_TYPE], data[start + 7])
    aionlmmap_set_slot(route, _route_slot[R_PROTOCOL], data[start + 5])
    aionlmmap_set_slot(route, _route_slot[R_SCOPE], data[start + 6])
    aionlmmap_set_slot(route, _route_slot[R_FLAGS], _u32(data + start + 8))
    aionlmmap_set_slot(route, _route_slot[R_TOS], data[start + 3])
    aionlmmap_set_slot(route, _route_slot[R_PRIORITY], priority)
    aionlmmap_set_slot(route, _route_slot[R_GATEWAY], gateway)
    aionlmmap_set_slot(route, _route_slot[R_OIF], oif)
    aionlmmap_set_slot(route, _route_slot[R_DEV], _name_of(names, oif) if oif is not None else None)
    aionlmmap_set_slot(route, _route_slot[R_PREFSRC], prefsrc)
    aionlmmap_set_slot(route, _route_slot[R_SRC], src)
    aionlmmap_set_slot(route, _route_slot[R_SRC_LEN], data[start + 2])
    aionlmmap_set_slot(route, _route_slot[R_PREF], pref)
    aionlmmap_set_slot(route, _route_slot[R_NEXTHOPS], nexthops)
    aionlmmap_set_slot(route, _route_slot[R_EXTRA], extra)
    _learn_layout(data, start, end)
    return route


cdef int _learn_layout(const uint8_t *data, Py_ssize_t start, Py_ssize_t end) except -1:
    """What the reference's generic walk does for route_layout.learn, for a
    payload the compiled walk decoded (its attribute headers checked): hand
    learn() its attribute spans while the length takes more layouts. Unlike
    the reference, this runs for every route of a dump (the compiled walk
    uses no learned layout), so a layout already tried is recognised here,
    by comparing the payload's nlattr headers in place with each tried
    signature (route_layout._signatures: those headers joined), and learn()
    is called only for a new one: the same calls that change anything as
    the reference makes, so both cores keep the same layouts."""
    cdef Py_ssize_t length_of_payload = end - start, offset, position, size, count = 0
    cdef uint16_t length
    cdef const char *known
    tried = _layout_signatures.get(length_of_payload)
    if tried is None:
        if len(_layout_signatures) >= _max_layouts:
            return 0  # learn() takes no new length
    else:
        if len(<list>tried) >= _max_variants:
            return 0
        for signature in <list>tried:
            known = <bytes>signature
            size = len(<bytes>signature)
            offset = start + RTMSG_SIZE
            position = 0
            while end - offset >= NLA_HDRLEN:
                if position + NLA_HDRLEN > size or memcmp(known + position, data + offset, NLA_HDRLEN) != 0:
                    break
                position += NLA_HDRLEN
                offset = (offset + _u16(data + offset) + 3) & ~3
            else:
                if position == size:
                    return 0  # tried: learn() would change nothing
    spans = []
    offset = start + RTMSG_SIZE
    while end - offset >= NLA_HDRLEN:
        length = _u16(data + offset)
        spans.append((_u16(data + offset + 2), offset - start, offset + NLA_HDRLEN - start, length - NLA_HDRLEN))
        offset = (offset + length + 3) & ~3
    _layout_learn(length_of_payload, spans)
    return 0


def decode_route(buffer, Py_ssize_t start, Py_ssize_t end, names=None):
    """Twin of :func:`aionlmmap.families.rtnl_codec.decode_route`:
    RTM_NEWROUTE/RTM_DELROUTE payload -> Route, its attributes walked in C
    (and, like the reference, the payload's layout learned for RouteTexts)."""
    cdef Py_buffer view
    if _Route is None:
        _bind_routes()
    if start < 0 or end - start < RTMSG_SIZE:
        return _pure_decode_route(buffer, start, end, names)
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if end > view.len:
            return _pure_decode_route(buffer, start, end, names)
        return _decode_route_at(buffer, <const uint8_t *>view.buf, start, end, names)
    finally:
        PyBuffer_Release(&view)


def route_walk(self, buffer, Py_ssize_t body):
    """Twin of ``RouteDecoders.walk`` (installed as that method): the
    Routes of the RTM_NEWROUTE messages in ``buffer[:body]``, each decoded
    by the compiled decode_route (no learned layout is faster in C). A
    RouteDecoders given another decoder, or a chunk whose headers do not
    tile ``body``, is walked by the reference."""
    cdef Py_buffer view
    cdef const uint8_t *data
    cdef Py_ssize_t offset = 0
    cdef uint32_t length
    cdef list items = []
    if _Route is None:
        _bind_routes()
    if self._decode_route is not decode_route or body < 0:
        return _pure_route_walk(self, buffer, body)
    names = self._names
    PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    try:
        if body > view.len:
            return _pure_route_walk(self, buffer, body)
        data = <const uint8_t *>view.buf
        while offset < body:
            length = _u32(data + offset) if body - offset >= NLMSG_HDRLEN else 0
            if length < NLMSG_HDRLEN or offset + <Py_ssize_t>length > body:
                return _pure_route_walk(self, buffer, body)
            if _u16(data + offset + 4) == RTM_NEWROUTE_TYPE:
                items.append(_decode_route_at(buffer, data, offset + NLMSG_HDRLEN, offset + length, names))
            offset = (offset + length + 3) & ~3
    finally:
        PyBuffer_Release(&view)
    return items


cdef inline bint _is_small(object value, long low, long high):
    return type(value) is int and low <= <long>value <= high


def route_to_json(self, details=False, stats=False):
    """Twin of ``Route.to_json`` (installed as that method): the dict is
    built in C for a route as a dump makes it; a route with details asked,
    with extra attributes printed before "flags", a cached IPv4 route, or
    fields of unusual types goes to the reference."""
    cdef PyObject *fields[ROUTE_FIELD_COUNT]
    cdef Py_ssize_t index
    cdef long family, dst_len, route_type, protocol, scope, flags, tos, src_len, table
    cdef dict out
    if _Route is None:
        _bind_routes()
    if type(self) is not _Route or details or stats:
        return _pure_route_to_json(self, details, stats)
    for index in range(ROUTE_FIELD_COUNT):
        fields[index] = aionlmmap_get_slot(self, _route_slot[index])  # borrowed: self holds them
        if fields[index] == NULL:
            return _pure_route_to_json(self, details)  # raises the AttributeError
    extra = <object>fields[R_EXTRA]
    if extra is not None and extra.early:
        return _pure_route_to_json(self, details)
    if not (_is_small(<object>fields[R_FAMILY], 0, 255) and _is_small(<object>fields[R_DST_LEN], 0, 255)
            and _is_small(<object>fields[R_TYPE], 0, 255) and _is_small(<object>fields[R_PROTOCOL], 0, 255)
            and _is_small(<object>fields[R_SCOPE], 0, 255) and _is_small(<object>fields[R_TOS], 0, 255)
            and _is_small(<object>fields[R_SRC_LEN], 0, 255) and _is_small(<object>fields[R_FLAGS], 0, 0xFFFFFFFF)
            and _is_small(<object>fields[R_TABLE], 0, 0xFFFFFFFF)):
        return _pure_route_to_json(self, details)
    dst, src, dev, oif = <object>fields[R_DST], <object>fields[R_SRC], <object>fields[R_DEV], <object>fields[R_OIF]
    if ((dst is not None and type(dst) is not str) or (src is not None and type(src) is not str)
            or (dev is not None and type(dev) is not str) or (oif is not None and type(oif) is not int)):
        return _pure_route_to_json(self, details)
    family, dst_len, route_type = <object>fields[R_FAMILY], <object>fields[R_DST_LEN], <object>fields[R_TYPE]
    protocol, scope, flags, tos = <object>fields[R_PROTOCOL], <object>fields[R_SCOPE], <object>fields[R_FLAGS], <object>fields[R_TOS]
    src_len, table = <object>fields[R_SRC_LEN], <object>fields[R_TABLE]
    if flags & RTM_F_CLONED_ and family == AF_INET_:
        return _pure_route_to_json(self, details)  # a cached IPv4 route prints its "cache" flags
    out = {}
    if route_type != RTN_UNICAST_:
        out["type"] = _ROUTE_TYPE_NAMES[route_type] if route_type < 12 else str(route_type)
    host = 32 if family == AF_INET_ else 128 if family == AF_INET6_ else -1
    if dst is None:
        out["dst"] = f"0/{dst_len}" if dst_len else "default"
    elif dst_len == host:
        out["dst"] = dst
    else:
        out["dst"] = f"{dst}/{dst_len}"
    if src is not None:
        out["from"] = src if src_len == host else f"{src}/{src_len}"
    elif src_len:
        out["src"] = f"0/{src_len}"
    if tos:
        out["tos"] = f"0x{tos:02x}"
    if fields[R_GATEWAY] != <PyObject *>None:
        out["gateway"] = <object>fields[R_GATEWAY]
    if oif is not None:
        out["dev"] = dev if dev else f"if{oif}"
    if table != RT_TABLE_MAIN_ and table:
        out["table"] = _TABLE_NAMES.get(table) or str(table)
    if not flags & RTM_F_CLONED_:
        if protocol != RTPROT_BOOT_:
            out["protocol"] = _PROTOCOL_TEXT[protocol]
        if scope != 0:
            out["scope"] = _SCOPE_TEXT[scope]
    if fields[R_PREFSRC] != <PyObject *>None:
        out["prefsrc"] = <object>fields[R_PREFSRC]
    if fields[R_PRIORITY] != <PyObject *>None:
        out["metric"] = <object>fields[R_PRIORITY]
    out["flags"] = _route_flag_names(<object>fields[R_FLAGS]) if flags else []
    if extra is not None:
        _late_keys(out, extra)
    if fields[R_PREF] != <PyObject *>None:
        pref = <object>fields[R_PREF]
        out["pref"] = _ROUTE_PREF_NAMES.get(pref) or str(pref)
    nexthops = <object>fields[R_NEXTHOPS]
    if nexthops:
        out["nexthops"] = [nexthop.to_json() for nexthop in nexthops]
    return out


def nexthop_to_json(self):
    """Twin of ``Nexthop.to_json`` (installed as that method), for a
    nexthop without RTA_VIA or RTA_FLOW."""
    cdef PyObject *slot
    cdef Py_ssize_t index
    if _Route is None:
        _bind_routes()
    if type(self) is not _Nexthop:
        return _pure_nexthop_to_json(self)
    fields = [None] * NEXTHOP_FIELD_COUNT
    for index in range(NEXTHOP_FIELD_COUNT):
        slot = aionlmmap_get_slot(self, _nexthop_slot[index])
        if slot == NULL:
            return _pure_nexthop_to_json(self)
        fields[index] = <object>slot
    dev, ifindex = fields[N_DEV], fields[N_IFINDEX]
    if fields[N_VIA] is not None or fields[N_FLOW] is not None or type(ifindex) is not int or (dev is not None and type(dev) is not str):
        return _pure_nexthop_to_json(self)
    out = {}
    if fields[N_GATEWAY] is not None:
        out["gateway"] = fields[N_GATEWAY]
    out["dev"] = dev if dev else f"if{ifindex}"
    out["weight"] = fields[N_WEIGHT]
    out["flags"] = _route_flag_names(fields[N_FLAGS])
    return out
