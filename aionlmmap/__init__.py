"""aionlmmap: asyncio netlink over the memory-mapped ring protocol.

>>> async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:
...     async for msg in ring:
...         print(msg.type, msg.group)
"""

from __future__ import annotations

import importlib

from .constants import (
    NETLINK_GENERIC,
    NETLINK_NETFILTER,
    NETLINK_ROUTE,
    NETLINK_SOCK_DIAG,
)
from .errors import (
    BackendUnavailableError,
    BusyResourceError,
    ClosedResourceError,
    DecodeError,
    DumpInterruptedError,
    Error,
    NetlinkError,
    OverrunError,
    ReleasedMessageError,
    RingConfigError,
)

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

    from ._open import open
    from .attributes import AttributeBuilder, Attributes
    from .frames import FrameHeader, FrameStatus, RingConfig
    from .message import Message, iter_messages
    from .ring import DEFAULT_RX, DEFAULT_TX, Ring, RingStats

__version__ = "0.1.0"

__all__ = [
    "open",
    "Ring",
    "RingStats",
    "RingConfig",
    "FrameHeader",
    "FrameStatus",
    "Message",
    "iter_messages",
    "Attributes",
    "AttributeBuilder",
    "DEFAULT_RX",
    "DEFAULT_TX",
    "NETLINK_ROUTE",
    "NETLINK_NETFILTER",
    "NETLINK_GENERIC",
    "NETLINK_SOCK_DIAG",
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

# The ring and its backends import asyncio, attrs and ctypes: more than the
# rest of `aionlmmap --help` together. They load on first use of a name
# (PEP 562), so the command and the pure modules pay only for what they use;
# `aionlmmap.open`, `from aionlmmap import Ring` work as before.
_LAZY = {
    "open": "._open",
    "Ring": ".ring",
    "RingStats": ".ring",
    "DEFAULT_RX": ".ring",
    "DEFAULT_TX": ".ring",
    "RingConfig": ".frames",
    "FrameHeader": ".frames",
    "FrameStatus": ".frames",
    "Message": ".message",
    "iter_messages": ".message",
    "Attributes": ".attributes",
    "AttributeBuilder": ".attributes",
}
#: submodules the package used to import eagerly: ``aionlmmap.ring`` after
#: a bare ``import aionlmmap`` keeps working.
_SUBMODULES = frozenset({"ring", "frames", "message", "attributes", "_open", "_sys", "protocol", "backends", "_extensions"})


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name, __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
