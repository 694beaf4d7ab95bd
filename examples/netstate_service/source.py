"""``rtnl.monitor(resync=True)`` as the service's event source.

Example::

    async for event in rtnl_source(netns="blue"):
        print(event.action, event.kind, event.obj.key)   # current state first, then live changes
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

__all__ = ["rtnl_source"]


async def rtnl_source(netns: Any = None, *, neighbours: bool = True, rules: bool = False) -> AsyncIterator[Any]:
    """Monitor events for links, addresses, routes (and neighbours, rules):
    the current state as "new" events, then every change; after an overrun
    the monitor re-dumps and yields only the differences, so the view never
    goes stale. The service treats the initial state as complete when this
    first waits (see service.py)."""
    from aionlmmap import rtnl

    async with rtnl.open(netns=netns) as nl:
        async for event in nl.monitor(links=True, addresses=True, routes=True, neighbours=neighbours, rules=rules, resync=True):
            yield event
