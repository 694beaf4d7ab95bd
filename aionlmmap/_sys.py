"""Operating-system glue: netlink sockets, socket options, network namespaces.

Not pure: this is where ``socket``, ``os`` and ``ctypes`` live, so that the
protocol modules stay testable without a kernel.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from collections.abc import Iterable

from .constants import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
    NETLINK_NO_ENOBUFS,
    NETLINK_PKTINFO,
    SOL_NETLINK,
)

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "NetnsSpec",
    "open_socket",
    "set_flag_option",
    "add_membership",
    "drop_membership",
    "kernel_release",
    "libc",
]

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

NetnsSpec = str | os.PathLike[str] | int | None

_libc: Any = None


def _load_libc() -> Any:
    """The C library, for the calls the socket module lacks (setns, and the
    backends' sendto/recvmmsg/syscall).

    dlopen(NULL) (``ctypes.CDLL(None)``) is the running program with the
    libraries it already links, libc among them: no ``ctypes.util``, whose
    find_library runs ``ldconfig -p`` in a subprocess and imports shutil,
    tempfile and random first (the largest single start-up cost of the
    command once). Loaded on first use: a dump in the caller's own namespace
    never needs it."""
    global _libc
    if _libc is None:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns  # noqa: B018  # a static interpreter may not export libc's symbols
        except (OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.setns.restype = ctypes.c_int
        _libc = libc
    return _libc


def __getattr__(name: str) -> Any:
    # ``_sys.libc`` stays an attribute for the backends (PEP 562).
    if name == "libc":
        return _load_libc()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kernel_release() -> str:
    """``uname -r`` (os.uname: the platform module costs an import)."""
    return os.uname().release


def _netns_path(netns: str | os.PathLike[str]) -> str:
    text = os.fspath(netns)
    if os.sep in text:
        return text
    return os.path.join(NETNS_RUN_DIR, text)


def _open_netns_fd(netns: str | os.PathLike[str] | int) -> tuple[int, bool]:
    if isinstance(netns, int):
        return netns, False
    path = _netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), True
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"network namespace {os.fspath(netns)!r} not found (looked for {path}); "
            "create it with `ip netns add NAME` or pass a path or an open fd",
        ) from None


def _create_socket(protocol: int) -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, protocol)


def open_socket(protocol: int, netns: NetnsSpec = None) -> socket.socket:
    """A non-blocking AF_NETLINK socket, created inside ``netns`` when given.

    A socket keeps the network namespace it was created in for its whole
    life (sock_net), so a short-lived thread enters the namespace with
    setns(2), creates the socket and exits; the calling thread and the rest
    of the process never move.
    """
    if netns is None:
        return _create_socket(protocol)
    ns_fd, owned = _open_netns_fd(netns)
    result: list[socket.socket | BaseException] = []

    def enter_and_create() -> None:
        try:
            import ctypes

            if _load_libc().setns(ns_fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into network namespace {netns!r} failed: {os.strerror(err)} (needs CAP_SYS_ADMIN)")
            result.append(_create_socket(protocol))
        except BaseException as exc:  # handed to the caller below
            result.append(exc)

    try:
        thread = threading.Thread(target=enter_and_create, name="aionlmmap-setns", daemon=True)
        thread.start()
        thread.join()
    finally:
        if owned:
            os.close(ns_fd)
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def set_flag_option(sock: socket.socket, option: int, value: bool = True) -> bool:
    """setsockopt(SOL_NETLINK, option, int). False if the kernel lacks the
    option (ENOPROTOOPT), so optional features degrade instead of failing."""
    try:
        sock.setsockopt(SOL_NETLINK, option, 1 if value else 0)
    except OSError as exc:
        if exc.errno in (errno.ENOPROTOOPT, errno.EINVAL):
            return False
        raise
    return True


def add_membership(sock: socket.socket, group: int) -> None:
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot join netlink multicast group {group}: {exc.strerror}") from None


def drop_membership(sock: socket.socket, group: int) -> None:
    sock.setsockopt(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, group)


def configure_socket(
    sock: socket.socket,
    *,
    groups: Iterable[int] = (),
    ext_ack: bool = True,
    strict_check: bool = True,
    no_enobufs: bool = False,
    pktinfo: bool = False,
    passcred: bool = False,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> dict[str, bool]:
    """Bind (kernel-assigned portid), set the options, join the groups.
    Returns which optional options the kernel accepted."""
    if rcvbuf is not None:
        _set_buffer(sock, socket.SO_RCVBUF, 33, rcvbuf)  # 33 = SO_RCVBUFFORCE
    if sndbuf is not None:
        _set_buffer(sock, socket.SO_SNDBUF, 32, sndbuf)  # 32 = SO_SNDBUFFORCE
    sock.bind((0, 0))
    accepted = {
        "ext_ack": set_flag_option(sock, NETLINK_EXT_ACK) if ext_ack else False,
        "strict_check": set_flag_option(sock, NETLINK_GET_STRICT_CHK) if strict_check else False,
        "no_enobufs": set_flag_option(sock, NETLINK_NO_ENOBUFS) if no_enobufs else False,
        "pktinfo": set_flag_option(sock, NETLINK_PKTINFO) if pktinfo else False,
    }
    if passcred:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    for group in groups:
        add_membership(sock, group)
    return accepted


def _set_buffer(sock: socket.socket, option: int, force_option: int, size: int) -> None:
    if size <= 0:
        raise ValueError(f"socket buffer size must be positive, got {size}")
    try:
        # The FORCE variants pass net.core.{r,w}mem_max when we have CAP_NET_ADMIN.
        sock.setsockopt(socket.SOL_SOCKET, force_option, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)


def portid_of(sock: socket.socket) -> int:
    pid, _groups = sock.getsockname()
    return int(pid)


PKTINFO = struct.Struct("=I")  # struct nl_pktinfo {u32 group}
UCRED = struct.Struct("=iII")  # struct ucred {pid_t pid; uid_t uid; gid_t gid}
