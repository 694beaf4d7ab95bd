"""``aionlmmap.open()``: socket, options, backend choice, Ring."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

from . import _sys
from .backends import Backend
from .constants import NETLINK_ROUTE
from .errors import BackendUnavailableError
from .frames import RingConfig
from .ring import DEFAULT_RX, DEFAULT_TX, Ring

log = logging.getLogger("aionlmmap")

#: SO_RCVBUF for rings that join multicast groups, unless told otherwise
DEFAULT_GROUP_RCVBUF = 1024 * 1024


#: Whether ``auto`` takes the uring backend where io_uring works (and the
#: kernel has no mmap ring), with the compiled core, for RX frames that hold
#: a whole dump chunk. Measured (``python -m benchmarks.uring_syscalls`` and
#: ``benchmarks.uring_profile --instructions``, docs/uring.md): with the
#: compiled core uring spends fewer instructions per nfqueue packet than the
#: emulated ring (its completions are taken in C), as many per dumped
#: message, and fewer syscalls in every scenario; with the pure-Python core
#: it spends more per datagram, so there ``auto`` keeps the emulated ring.
#: Smaller frames keep it too: a datagram larger than a frame is lost on
#: uring (reported as an overrun) where emulated delivers it as a COPY frame.
AUTO_PREFERS_URING = True


def _auto_takes_uring() -> tuple[bool, str]:
    """Whether ``auto`` takes a working io_uring here (before the frame
    size is asked), and why not when it does not."""
    if not AUTO_PREFERS_URING:
        return False, "uring is opt-in (backend='uring', see docs/uring.md)"
    from ._extensions import CORE_REASON, speedups

    if speedups is None:
        return False, (f"with the pure-Python core ({CORE_REASON}) uring spends more per datagram than the emulated ring "
                       "(backend='uring' still works; see docs/uring.md)")
    return True, ""


def auto_backend() -> tuple[str, str]:
    """The backend ``auto`` picks here, and why (probed once per process;
    what ``aionlmmap info`` prints). For RX frames smaller than a dump
    chunk (32 KiB behind the receive prefix) ``auto`` picks the emulated
    ring instead of uring."""
    from .info import probe_kernel_ring, probe_uring

    available, reason = probe_kernel_ring()
    if available:
        return "kernel", reason
    uring, uring_reason = probe_uring()
    if not uring:
        return "emulated", f"{reason}; no uring backend ({uring_reason})"
    takes, why_not = _auto_takes_uring()
    if takes:
        return "uring", (f"{reason}; {uring_reason}, with the compiled core; the emulated ring for RX frames that do not hold "
                         "a 32 KiB dump chunk")
    return "emulated", f"{reason}; the emulated ring, also where io_uring works: {why_not}"


def _select_backend(name: str, sock: Any, rx: RingConfig, tx: RingConfig, skip_is_safe: bool = False) -> Backend:
    """``auto``: the kernel ring where the kernel has one (< 4.6), else the
    uring backend where io_uring works, with the compiled core, for RX
    frames that hold a dump chunk (:data:`AUTO_PREFERS_URING`), else the
    emulated ring."""
    if name not in ("auto", "kernel", "emulated", "uring"):
        raise ValueError(f"backend must be 'auto', 'kernel', 'uring' or 'emulated', not {name!r}")
    if name in ("auto", "kernel"):
        try:
            from .backends import kernel as kernel_backend
        except ImportError:
            kernel_backend = None  # type: ignore[assignment]
        if kernel_backend is not None:
            try:
                return kernel_backend.KernelBackend(sock, rx, tx, skip_is_safe=skip_is_safe)  # type: ignore[no-any-return]
            except BackendUnavailableError:
                if name == "kernel":
                    raise
                log.debug("aionlmmap: no kernel mmap ring (%s); using the emulated ring", _sys.kernel_release())
        elif name == "kernel":
            raise BackendUnavailableError(
                f"the kernel ring backend is not available on Linux {_sys.kernel_release()}: the netlink mmap "
                "ring was removed in Linux 4.6; use backend='emulated' or 'auto'"
            )
    if name == "uring":
        from .backends.uring import UringBackend

        return UringBackend(sock, rx, tx)
    if name == "auto" and _auto_takes_uring()[0]:
        from .backends import _uring_sys
        from .backends.uring import holds_a_dump_chunk

        # Frames too small for a dump chunk stay with the emulated ring,
        # which delivers a larger datagram as a COPY frame; on uring the
        # receive has consumed it and it could only be reported lost.
        if holds_a_dump_chunk(rx) and _uring_sys.probe()[0]:
            from .backends.uring import UringBackend

            try:
                return UringBackend(sock, rx, tx)
            except BackendUnavailableError as exc:
                log.debug("aionlmmap: the uring backend could not start (%s); using the emulated ring", exc)
    from .backends.emulated import EmulatedBackend

    return EmulatedBackend(sock, rx, tx)


def open(
    protocol: int = NETLINK_ROUTE,
    *,
    groups: Iterable[int] = (),
    netns: _sys.NetnsSpec = None,
    backend: Literal["auto", "kernel", "uring", "emulated"] = "auto",
    rx: RingConfig | None = None,
    tx: RingConfig | None = None,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
    ext_ack: bool = True,
    strict_check: bool = True,
    accept_foreign: bool = False,
    passcred: bool = False,
    no_enobufs: bool = False,
    backlog_limit: int = 16 * 1024 * 1024,
    skip_is_safe: bool = False,
) -> Ring:
    """Open a netlink socket with RX/TX frame rings.

    ``async with aionlmmap.open(NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:``

    Args:
        protocol: NETLINK_ROUTE, NETLINK_NETFILTER, NETLINK_GENERIC, ...
        groups: multicast group numbers to join (e.g. RTNLGRP_LINK).
        netns: a network namespace name (``ip netns``), path or open fd; the
            socket is created inside it without moving this process.
        backend: ``"auto"`` (the kernel ring if the kernel has one, else
            uring where io_uring works, with the compiled core and RX frames
            that hold a 32 KiB dump chunk, else emulated; ``aionlmmap info``
            says which and why), ``"kernel"``, ``"uring"`` (io_uring multishot
            receive into a provided-buffer ring, Linux >= 6.0; raises
            :class:`BackendUnavailableError` naming the reason where it
            cannot work) or ``"emulated"``.
        rx, tx: ring geometry (:class:`RingConfig`); defaults suit dumps.
        rcvbuf, sndbuf: SO_RCVBUF/SO_SNDBUF (FORCE variants when allowed).
            A ring that joins groups defaults to a 1 MiB receive buffer, as
            iproute2's libnetlink does for ``ip monitor``: the kernel's
            default (net.core.rmem_default, about 200 KiB) holds only a few
            hundred notifications, and a burst longer than that overruns.
        ext_ack, strict_check: NETLINK_EXT_ACK and NETLINK_GET_STRICT_CHK,
            on by default where the kernel has them.
        accept_foreign: also accept messages from non-kernel senders.
        passcred: SO_PASSCRED, fills uid/gid of received messages.
        no_enobufs: NETLINK_NO_ENOBUFS (overruns are then silent: not advised).
        backlog_limit: bytes of notifications copied out of the ring while a
            request waits behind them, and (kernel backend) of COPY-path
            notifications read off the socket queue and not yet consumed,
            before further ones are dropped as an overrun.
        skip_is_safe: every message this socket receives takes the kernel's
            ring path (nfqueue packets, nflog entries, dumps, ACKs), so held
            frames may be marked SKIP on the kernel backend. Never on
            sockets that get multicast notifications or non-dump replies:
            the kernel's COPY path drops them at a SKIP frame. The emulated
            backend always steps past SKIP and ignores this.
    """
    groups = list(groups)
    if rcvbuf is None and groups:
        rcvbuf = DEFAULT_GROUP_RCVBUF
    rx_config = rx or DEFAULT_RX
    tx_config = tx or DEFAULT_TX
    rx_config.validate()
    tx_config.validate()
    sock = _sys.open_socket(protocol, netns)
    try:
        options = _sys.configure_socket(
            sock,
            groups=groups,
            ext_ack=ext_ack,
            strict_check=strict_check,
            no_enobufs=no_enobufs,
            pktinfo=True,
            passcred=passcred,
            rcvbuf=rcvbuf,
            sndbuf=sndbuf,
        )
        chosen = _select_backend(backend, sock, rx_config, tx_config, skip_is_safe)
        return Ring(chosen, sock, protocol=protocol, accept_foreign=accept_foreign, backlog_limit=backlog_limit, options=options)
    except BaseException:
        sock.close()
        raise
