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

from . import bytecode
from .client import SockDiagClient, open, state_mask
from .codec import DecodeCounts
from .objects import InetSocket, UnixSocket

__all__ = ["open", "SockDiagClient", "state_mask", "DecodeCounts", "InetSocket", "UnixSocket", "bytecode"]
