"""What ``aionlmmap info`` prints: the kernel, what was probed (the
kernel's mmap ring; io_uring's setup, provided-buffer ring and multishot
receive), which backend ``"auto"`` picks and why, which core (compiled or
pure Python) is in use, and the ring geometry.

>>> from aionlmmap.info import collect_info, format_info
>>> collect_info()["auto_backend"]
'emulated'
>>> print(format_info())
"""

from __future__ import annotations

import errno
import mmap
from typing import Any

from . import _extensions, _sys
from .constants import NETLINK_ROUTE
from .errors import BackendUnavailableError
from .frames import RingConfig
from .ring import DEFAULT_RX, DEFAULT_TX

__all__ = ["collect_info", "format_info", "probe_kernel_ring", "probe_uring"]


def probe_kernel_ring(protocol: int = NETLINK_ROUTE) -> tuple[bool, str]:
    """Ask the kernel (never a version number) whether it has the mmap
    ring: set a one-frame RX ring on a throwaway socket, then close it.
    Returns (available, reason)."""
    from .backends.kernel import KernelBackend

    try:
        sock = _sys.open_socket(protocol)
    except OSError as exc:
        return False, f"cannot open a netlink socket: {exc}"
    try:
        sock.bind((0, 0))
        one_page = RingConfig(mmap.PAGESIZE, 1, mmap.PAGESIZE, 1)
        backend = KernelBackend(sock, one_page, one_page)
        backend.close()
        return True, "setsockopt(NETLINK_RX_RING) succeeded: the kernel has the netlink mmap ring (CONFIG_NETLINK_MMAP)"
    except BackendUnavailableError as exc:
        if exc.errno == errno.ENOPROTOOPT:
            return False, "setsockopt(NETLINK_RX_RING) answered ENOPROTOOPT: no mmap ring (removed in Linux 4.6)"
        return False, str(exc.strerror or exc)
    except OSError as exc:
        return False, f"setsockopt(NETLINK_RX_RING) failed: {exc}"
    finally:
        sock.close()


def _geometry(config: RingConfig) -> dict[str, int]:
    return {
        "block_size": config.block_size,
        "block_nr": config.block_nr,
        "frame_size": config.frame_size,
        "frame_nr": config.frame_nr,
        "bytes": config.ring_size,
    }


def probe_uring() -> tuple[bool, str]:
    """Whether ``backend="uring"`` works here (io_uring with multishot
    receive into a provided-buffer ring), and why; probed once per process."""
    from .backends import _uring_sys

    return _uring_sys.probe()


def collect_info() -> dict[str, Any]:
    """Kernel release, the ring probe's answer, the uring probe (each step
    and its answer), the backend ``"auto"`` picks and why, and the default
    ring geometry, as a JSON-ready dict."""
    from ._open import auto_backend
    from .backends import _uring_sys

    available, reason = probe_kernel_ring()
    uring_available, uring_reason = probe_uring()
    auto, auto_reason = auto_backend()
    return {
        "kernel_release": _sys.kernel_release(),
        "page_size": mmap.PAGESIZE,
        "kernel_ring_available": available,
        "kernel_ring_reason": reason,
        "uring_available": uring_available,
        "uring_reason": uring_reason,
        "uring_probe": [{"step": step, "answer": answer} for step, answer in _uring_sys.probe_steps()],
        "auto_backend": auto,
        "auto_reason": auto_reason,
        "rx_ring": _geometry(DEFAULT_RX),
        "tx_ring": _geometry(DEFAULT_TX),
        "core": _extensions.CORE,
        "core_reason": _extensions.CORE_REASON,
    }


def format_info(info: dict[str, Any] | None = None) -> str:
    """``collect_info()`` as the lines ``aionlmmap info`` prints."""
    info = info or collect_info()
    lines = [
        f"kernel: Linux {info['kernel_release']} (page size {info['page_size']})",
        f"kernel mmap ring: {'yes' if info['kernel_ring_available'] else 'no'}"
        + (f" ({info['kernel_ring_reason']})" if info.get("kernel_ring_reason") else ""),
        f"io_uring (backend 'uring'): {'yes' if info['uring_available'] else 'no'} ({info['uring_reason']})",
    ]
    for step in info.get("uring_probe", ()):
        lines.append(f"  {step['step']}: {step['answer']}")
    lines.append(f"backend 'auto' picks: {info['auto_backend']} ({info['auto_reason']})")
    if "core" in info:
        lines.append(f"core: {info['core']} ({info['core_reason']})")
    for name in ("rx_ring", "tx_ring"):
        ring = info[name]
        lines.append(
            f"{name.replace('_', ' ')}: {ring['frame_nr']} frames of {ring['frame_size']} bytes "
            f"in {ring['block_nr']} blocks of {ring['block_size']} ({ring['bytes'] // 1024} KiB)"
        )
    return "\n".join(lines)
