"""The aionlmmap exception hierarchy.

Every exception the library raises on purpose derives from :class:`Error`.
Errors the kernel reports in an NLMSG_ERROR message are :class:`NetlinkError`,
which is also an :class:`OSError` of the matching subclass (``FileExistsError``
for EEXIST, ``PermissionError`` for EPERM, ...), so ordinary ``except
FileExistsError`` code keeps working.
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Error",
    "NetlinkError",
    "DecodeError",
    "OverrunError",
    "ClosedResourceError",
    "BusyResourceError",
    "RingConfigError",
    "BackendUnavailableError",
    "DumpInterruptedError",
    "ReleasedMessageError",
]


class Error(Exception):
    """Base class of every exception raised by aionlmmap."""


class NetlinkError(Error, OSError):
    """The kernel answered a request with an error (NLMSG_ERROR, error < 0).

    Attributes:
        errno: the positive errno value.
        extack_message: the kernel's extended-ack text (NLMSGERR_ATTR_MSG), or None.
        extack_offset: byte offset of the offending attribute inside the request
            (NLMSGERR_ATTR_OFFS), or None.
        request: the request message that failed, when known.

    ``NetlinkError(errno.EEXIST, ...)`` returns an instance that is also a
    ``FileExistsError``; each errno that Python maps to an OSError subclass maps
    the same way here.
    """

    extack_message: str | None
    extack_offset: int | None
    request: Any

    def __new__(
        cls,
        errno: int,
        extack_message: str | None = None,
        extack_offset: int | None = None,
        request: Any = None,
    ) -> NetlinkError:
        if cls is NetlinkError:
            cls = _errno_class(errno)
        return OSError.__new__(cls, errno, os.strerror(errno))  # type: ignore[no-any-return]

    def __init__(
        self,
        errno: int,
        extack_message: str | None = None,
        extack_offset: int | None = None,
        request: Any = None,
    ) -> None:
        strerror = os.strerror(errno)
        OSError.__init__(self, errno, strerror)
        self.extack_message = extack_message
        self.extack_offset = extack_offset
        self.request = request

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        text = f"[{name}] {self.strerror}"
        if self.extack_message:
            text += f": {self.extack_message}"
        if self.extack_offset is not None:
            text += f" (at byte {self.extack_offset} of the request)"
        return text

    def __reduce__(self) -> Any:
        return (NetlinkError, (self.errno, self.extack_message, self.extack_offset))


def _builtin_oserror_subclass(errno: int) -> type[OSError]:
    # OSError's constructor picks FileExistsError & co. from the errno; reuse
    # its table instead of copying it.
    return type(OSError(errno, ""))


_ERRNO_CLASSES: dict[int, type[NetlinkError]] = {}


def _errno_class(errno: int) -> type[NetlinkError]:
    cls = _ERRNO_CLASSES.get(errno)
    if cls is None:
        builtin = _builtin_oserror_subclass(errno)
        if builtin is OSError:
            cls = NetlinkError
        else:
            cls = type(
                f"Netlink{builtin.__name__}",
                (NetlinkError, builtin),
                {"__module__": __name__, "__doc__": f"NetlinkError that is also a {builtin.__name__}."},
            )
        _ERRNO_CLASSES[errno] = cls
    return cls


class DecodeError(Error, ValueError):
    """Malformed netlink data: a truncated header, a length past the buffer,
    an attribute that overflows its parent. The reader counts and skips such
    data (``ring.stats``); codecs raise this when called directly."""


class OverrunError(Error, OSError):
    """The socket overran (ENOBUFS): the kernel dropped messages because the
    receive buffer or the RX ring was full.

    The ring keeps working; iterate again to go on. Messages were lost, so state
    built from notifications is stale: re-dump it (the family monitors do this
    with ``resync=True``), enlarge the ring or SO_RCVBUF, or consume faster.
    """

    #: how many messages were lost at this point (the kernel's count,
    #: SO_MEMINFO's sk_drops, plus what the ring itself dropped past its
    #: backlog limit), or None where the kernel does not tell
    lost: int | None

    def __init__(self, message: str = "netlink socket overrun (ENOBUFS): messages were dropped", lost: int | None = None) -> None:
        OSError.__init__(self, _errno.ENOBUFS, message)
        self.lost = lost

    def __str__(self) -> str:
        return str(self.strerror)


class ClosedResourceError(Error):
    """The ring was closed: raised in every waiter woken by ``close()`` and by
    any call made after it."""


class BusyResourceError(Error):
    """Another task is already using a resource that allows one user at a time
    (for example iterating the same ring from two tasks)."""


class RingConfigError(Error, ValueError):
    """A ring geometry the kernel would reject (EINVAL), caught before the
    syscall. The message names the broken invariant."""


class BackendUnavailableError(Error, OSError):
    """The requested ring backend cannot be used on this system (for example
    ``backend="kernel"`` on Linux >= 4.6, which removed the mmap ring)."""


class DumpInterruptedError(Error):
    """A dump kept coming back with NLM_F_DUMP_INTR (the kernel's table changed
    during the dump) after every allowed retry. Retry later or raise the
    ``dump_intr_retries`` limit."""


class ReleasedMessageError(Error, ValueError):
    """A message's payload was read after its frame went back to the kernel.

    Messages borrowed from the ring live until the iterator moves on. Call
    ``msg.hold()`` to keep the frame (and ``msg.release()`` when done) or copy
    the bytes you need (``bytes(msg.payload)``) before advancing.
    """
