# --- aionlmmap.message: flatten_lists -----------------------------------------
#
# A dump's iterator on the compiled core steps once per chunk (the ring's
# generator yields the chunk's list of Messages) and hands the messages
# out one by one from here. Resuming an async generator costs about
# 140 ns a step on CPython 3.11; a step of this object, while its list
# lasts, is three C calls (am_anext, am_await, am_send) and no frame.

from cpython.ref cimport PyObject, Py_INCREF
from cpython.exc cimport PyErr_SetString

cdef extern from *:
    """
    /* The slot table CPython reads `await` through; only am_send is set
       here, after the type is ready (Cython fills the others). */
    #define aionlmmap_async_slots(tp) (((PyTypeObject *)(tp))->tp_as_async)
    """
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    ctypedef PySendResult (*sendfunc)(PyObject*, PyObject*, PyObject**)
    ctypedef struct PyAsyncMethods:
        sendfunc am_send
    PyAsyncMethods* aionlmmap_async_slots(object tp)

#: Both ways of awaiting a step (am_send and tp_iternext) say this.
cdef const char* _NO_ITEM_READY = b"flatten_lists: awaited with no item ready; await each __anext__() once"


cdef class flatten_lists:
    """Twin of :func:`aionlmmap.message.flatten_lists` (see there).

    ``__anext__`` returns the object itself while items are left in the
    current list: awaiting it completes at once with the next item. When
    the list is used up it returns a coroutine that awaits the next list
    from ``lists``, so ``lists`` ends, raises and is cancelled as the pure
    version's ``async for`` over it would."""

    cdef list _items
    cdef Py_ssize_t _next
    cdef object _lists
    cdef object _lists_anext

    def __cinit__(self, lists):
        self._items = []
        self._next = 0
        self._lists = lists
        self._lists_anext = lists.__anext__

    def __aiter__(self):
        return self

    def __anext__(self):
        if self._next < len(self._items):
            return self
        return self._refill()

    async def _refill(self):
        cdef list items
        while True:
            items = await self._lists_anext()
            if items:
                self._items = items
                self._next = 1
                return items[0]

    def __await__(self):
        return self

    def __next__(self):
        # Reached only where the interpreter does not call am_send (CPython
        # 3.12's SEND calls tp_iternext): the item ends the await as
        # StopIteration's value.
        if self._next >= len(self._items):
            raise RuntimeError(_NO_ITEM_READY.decode())
        item = self._items[self._next]
        self._next += 1
        raise StopIteration(item)

    def aclose(self):
        """Close ``lists`` (an awaitable, as an async generator's aclose)."""
        self._items = []
        self._next = 0
        return self._lists.aclose()


cdef PySendResult _flatten_lists_send(PyObject* awaitable, PyObject* sent, PyObject** result) noexcept:
    # Called only on an object __anext__ returned as ready, so an item is
    # there; the check keeps a stray second await an error, not a crash.
    cdef flatten_lists self = <flatten_lists>awaitable
    cdef object item
    if self._next >= len(self._items):
        PyErr_SetString(RuntimeError, _NO_ITEM_READY)
        return PYGEN_ERROR
    item = self._items[self._next]
    self._next += 1
    Py_INCREF(item)
    result[0] = <PyObject*>item
    return PYGEN_RETURN


aionlmmap_async_slots(flatten_lists).am_send = _flatten_lists_send
