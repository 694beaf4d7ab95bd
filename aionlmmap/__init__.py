"""aionlmmap: asyncio netlink over the memory-mapped ring protocol.

>>> async with aionlmmap.open(aionlmmap.NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:
...     async for msg in ring:
...         print(msg.type, msg.group)
"""

from __future__ import annotations

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
from .frames import FrameHeader, FrameStatus, RingConfig
from .message import Message, iter_messages
from .attributes import AttributeBuilder, Attributes
from .ring import DEFAULT_RX, DEFAULT_TX, Ring, RingStats  # imports ._open too
from ._open import open

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
