"""The unix socket value, :class:`UnixSocket` (``ss -x``), with ``to_json()``
in the shape docs/sock_diag.md defines (the same keys as
:class:`.objects.InetSocket`'s).

Pure: imports neither asyncio nor socket.
"""

from __future__ import annotations

from typing import Any

import attrs

from .constants import STATE_NAMES, UNIX_NETIDS

__all__ = ["UnixSocket"]
@attrs.frozen(slots=True)
class UnixSocket:
    """One unix socket (``struct unix_diag_msg`` and its attributes). ss
    shows the name (``*`` when unnamed, ``@`` for abstract names) and the
    inode as address and port, and the peer's inode as peer port."""

    type: int
    state: int
    inode: int
    path: str | None = None
    peer_inode: int = 0
    recv_q: int = 0
    send_q: int = 0
    cookie: int = 0
    uid: int | None = None
    pending: tuple[int, ...] | None = None
    extensions: dict[str, Any] | None = attrs.field(default=None, eq=False)

    @property
    def netid(self) -> str:
        return UNIX_NETIDS.get(self.type, f"u_{self.type}")

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "netid": self.netid,
            "state": self.state_name,
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "local_address": self.path if self.path is not None else "*",
            "local_port": self.inode,
            "peer_address": "*",
            "peer_port": self.peer_inode,
            "family": "unix",
            "inode": self.inode,
            "cookie": self.cookie,
        }
        if self.uid is not None:
            out["uid"] = self.uid
        if self.pending is not None:
            out["pending"] = list(self.pending)
        if self.extensions:
            out.update(self.extensions)
        return out
