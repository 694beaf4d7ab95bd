"""The nf_tables ruleset, kept live by the kernel's nf_tables notifications.

A ring joined to ``NFNLGRP_NFTABLES`` hears every change; the kernel ends
each committed transaction with ``NFT_MSG_NEWGEN`` (``nf_tables_gen_notify``
in net/netfilter/nf_tables_api.c). On each NEWGEN (coalesced: a burst of
transactions costs one refresh) the view dumps tables, chains, sets, their
elements and rules on a second socket, checks the generation id did not
move during the dump (else dumps again), and

- keeps the whole ruleset as ``nft -j list ruleset`` prints it
  (:mod:`.nft_json`) for ``/api/nftables``;
- publishes what changed to the service's view as ``nft_table``,
  ``nft_chain``, ``nft_set``, ``nft_element`` and ``nft_rule`` events, so
  SSE clients (and the live page) see each change, and resync snapshots
  carry the ruleset too.

After an overrun (notifications lost) it simply refreshes: the dump is the
truth. If nf_tables cannot be read (module missing, namespace gone) the
view reports the error and retries with a growing delay (:class:`.LiveView`).

Example::

    view = NftablesView(service, netns="blue")
    task = asyncio.create_task(view.run())
    await view.wait_ready(5)
    print(view.ruleset)          # the list under "nftables", metainfo first
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import attrs

from .live_view import LiveView, ViewEvent
from .nft_json import JSON_SCHEMA_VERSION, anonymous_sets, chain_json, element_json, rule_json, ruleset_json, set_json, table_json

__all__ = ["NFNLGRP_NFTABLES", "NFT_KINDS", "NftObject", "NftablesView"]

log = logging.getLogger("netstate_service")

NFNLGRP_NFTABLES = 7  # enum nfnetlink_groups (<linux/netfilter/nfnetlink.h>)
_NFNL_SUBSYS_NFTABLES = 10
_NFT_MSG_NEWGEN = 15
NFT_KINDS = ("nft_table", "nft_chain", "nft_set", "nft_element", "nft_rule")
_GENERATION_RETRIES = 5


@attrs.frozen
class NftObject:
    """One nf_tables object as the service's view holds it."""

    key: tuple[Any, ...]
    document: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.document


def _without_expires(value: Any) -> Any:
    # An element's "expires" counts down between dumps: it is not a change.
    if isinstance(value, dict) and "elem" in value and isinstance(value["elem"], dict):
        return {"elem": {name: item for name, item in value["elem"].items() if name != "expires"}}
    return value


class NftablesView(LiveView):
    """See the module docstring. ``service`` receives the change events
    (``NetStateService.apply_external``)."""

    name = "nf_tables view"

    def __init__(self, service: Any, netns: Any = None, *, retry_delay: float = 1.0, max_retry_delay: float = 30.0) -> None:
        super().__init__(service, netns, retry_delay=retry_delay, max_retry_delay=max_retry_delay)
        self.ruleset: list[dict[str, Any]] | None = None  #: nft -j's list (metainfo first), None until the first dump
        self.generation: int | None = None
        self.refreshes = 0
        self._objects: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}
        self._dirty = asyncio.Event()

    async def _follow(self) -> None:
        import aionlmmap
        from aionlmmap.families.netfilter import nftables

        notifications = aionlmmap.open(aionlmmap.NETLINK_NETFILTER, groups=[NFNLGRP_NFTABLES], netns=self.netns)
        async with notifications, nftables.open(netns=self.netns) as nft:
            register = getattr(self.service, "register_ring", None)
            if register is not None:
                register("nftables", notifications)
                register("nftables-dump", nft.ring)
            # Joined before the first dump: a change made during it is heard.
            self._dirty.set()
            listener = asyncio.create_task(self._listen(notifications))
            try:
                while True:
                    if listener.done():
                        listener.result()  # raises what ended it
                        return
                    waiter = asyncio.create_task(self._dirty.wait())
                    await asyncio.wait({waiter, listener}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if self._dirty.is_set():
                        self._dirty.clear()
                        await self._refresh(nft)
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener

    async def _listen(self, ring: Any) -> None:
        from aionlmmap.errors import OverrunError

        while True:
            try:
                async for msg in ring:
                    if msg[0] == (_NFNL_SUBSYS_NFTABLES << 8 | _NFT_MSG_NEWGEN):
                        self._dirty.set()
            except OverrunError:
                self._dirty.set()  # notifications were lost: the dump is the truth

    async def _refresh(self, nft: Any) -> None:
        for _attempt in range(_GENERATION_RETRIES):
            before = await nft.generation()
            tables = await nft.tables()
            chains = await nft.chains()
            sets = await nft.sets()
            set_elements = [(nft_set, await nft.elements(nft_set)) for nft_set in sets]
            rules = await nft.rules()
            if await nft.generation() == before:
                break
        else:
            log.warning("the nf_tables ruleset changed during %d dumps in a row; serving the last one", _GENERATION_RETRIES)
        self.generation = before
        self.refreshes += 1
        metainfo = {"metainfo": {"json_schema_version": JSON_SCHEMA_VERSION, "generator": "aionlmmap netstate_service", "generation": before}}
        self.ruleset = [metainfo, *ruleset_json(tables, chains, set_elements, rules)]
        self._publish(tables, chains, set_elements, rules)
        self.last_error = None
        self._ready.set()

    def _publish(self, tables: list[Any], chains: list[Any], set_elements: list[tuple[Any, list[Any]]], rules: list[Any]) -> None:
        objects: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}
        for table in tables:
            objects[("nft_table", (table.family, table.name))] = table_json(table)
        for chain in chains:
            objects[("nft_chain", (chain.family, chain.table, chain.name))] = chain_json(chain)
        for nft_set, elements in set_elements:
            if "anonymous" in nft_set.flags:
                continue
            objects[("nft_set", (nft_set.family, nft_set.table, nft_set.name))] = set_json(nft_set, None)
            for element in elements:
                value = _without_expires(element_json(element, nft_set))
                key = (nft_set.family, nft_set.table, nft_set.name, json.dumps(value, sort_keys=True))
                objects[("nft_element", key)] = {"family": nft_set.family, "table": nft_set.table, "set": nft_set.name, "elem": value}
        anonymous = anonymous_sets(set_elements)
        for rule in rules:
            objects[("nft_rule", (rule.family, rule.table, rule.chain, rule.handle))] = rule_json(rule, anonymous.get((rule.family, rule.table)))
        previous, self._objects = self._objects, objects
        apply = self.service.apply_external
        for (kind, key), document in previous.items():
            if (kind, key) not in objects:
                apply(ViewEvent("del", kind, NftObject(key, document)))
        for (kind, key), document in objects.items():
            if previous.get((kind, key)) != document:
                apply(ViewEvent("new", kind, NftObject(key, document)))

    def status(self) -> dict[str, Any]:
        return {"ready": self.ready, "generation": self.generation, "refreshes": self.refreshes, "last_error": self.last_error}
