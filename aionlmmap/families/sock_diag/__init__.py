"""Socket diagnostics (NETLINK_SOCK_DIAG): what ``ss`` shows.

inet_diag for TCP and UDP over IPv4 and IPv6, filtered in the kernel by
state and by a bytecode program over ports and addresses, with extensions
(tcp_info, memory, congestion control, mark, cgroup id); unix_diag (type,
state, name, peer, queues); and SOCK_DESTROY.

>>> from aionlmmap.families import sock_diag
>>> from aionlmmap.families.sock_diag.bytecode import dport, src
>>> async with sock_diag.open() as sd:
...     async for sock in sd.inet("tcp", states="established", filter=dport(443) & src("10.0.0.0/8"), extensions=["tcp_info"]):
...         print(sock.to_json())
"""

from __future__ import annotations

import importlib

from . import bytecode
from .codec import DecodeCounts, state_mask
from .objects import InetSocket

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

    from .client import SockDiagClient, open
    from .unix_socket import UnixSocket

__all__ = ["open", "SockDiagClient", "state_mask", "DecodeCounts", "InetSocket", "UnixSocket", "bytecode"]

# The client needs the ring (asyncio); `aionlmmap dump sockets` reads its one
# dump without them (.oneshot), so the client loads on first use (PEP 562).
_LAZY = {"open": ".client", "SockDiagClient": ".client", "UnixSocket": ".unix_socket"}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
