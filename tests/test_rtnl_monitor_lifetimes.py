"""Addresses with a lifetime: the kernel reports what is left of it
(inet_fill_ifaddr / inet6_fill_ifaddr subtract the time since ifa_tstamp),
so a dump a second later shows other numbers for the same address. The
address is the same until its lifetimes are set again (which moves
IFA_CACHEINFO's tstamp): equality follows that, as route ``expires`` does,
so a view compares equal to a dump taken later and a re-dump makes no
event for an address that did not change."""

from __future__ import annotations

import asyncio

from aionlmmap import rtnl
from aionlmmap.families.rtnl_objects import Address
from conftest import ip
from rtnl_helpers import quiet_ipv6

from test_rtnl_monitor_drift import exact, pair, watching


async def dumped(netns: str, dev: str) -> dict[str, Address]:
    async with rtnl.open(netns=netns) as nl:
        return {address.local: address async for address in nl.addresses(dev=dev) if address.scope == 0}


async def test_an_address_dumped_later_equals_itself_until_its_lifetime_is_set_again(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "lt0", "lt1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "lt0", "valid_lft", "300", "preferred_lft", "200")
    ip(netns, "addr", "add", "2001:db8::1/64", "dev", "lt0", "valid_lft", "300", "preferred_lft", "200")
    ip(netns, "addr", "add", "198.51.100.1/24", "dev", "lt0")  # forever
    first = await dumped(netns, "lt0")
    await asyncio.sleep(1.1)
    later = await dumped(netns, "lt0")
    for local in ("192.0.2.1", "2001:db8::1"):
        # The countdown is still there to read...
        assert later[local].valid_lft < first[local].valid_lft  # type: ignore[operator]
        assert later[local].preferred_lft < first[local].preferred_lft  # type: ignore[operator]
        # ...but it is the same address.
        assert later[local] == first[local]
        assert hash(later[local]) == hash(first[local])
    assert later["198.51.100.1"] == first["198.51.100.1"]
    # Setting the lifetimes again (even to what is left) is a change.
    ip(netns, "addr", "change", "192.0.2.1/24", "dev", "lt0", "valid_lft", "300", "preferred_lft", "200")
    ip(netns, "addr", "change", "2001:db8::1/64", "dev", "lt0", "valid_lft", "300", "preferred_lft", "200")
    changed = await dumped(netns, "lt0")
    for local in ("192.0.2.1", "2001:db8::1"):
        assert changed[local] != later[local]
    # A finite lifetime made forever is a change too.
    ip(netns, "addr", "change", "198.51.100.1/24", "dev", "lt0", "valid_lft", "300", "preferred_lft", "300")
    assert (await dumped(netns, "lt0"))["198.51.100.1"] != later["198.51.100.1"]


async def test_a_redump_of_unchanged_addresses_with_lifetimes_makes_no_event(netns: str) -> None:
    quiet_ipv6(netns)
    pair(netns, "le0", "le1")
    ip(netns, "addr", "add", "192.0.2.1/24", "dev", "le0", "valid_lft", "300", "preferred_lft", "200")
    ip(netns, "addr", "add", "2001:db8::1/64", "dev", "le0", "valid_lft", "300", "preferred_lft", "200")
    async with watching(netns, links=True, addresses=True, routes=True) as view:
        await exact(netns, view, ["link", "address", "route"])
        await asyncio.sleep(1.1)
        before = view.events
        # A link change has the link's addresses dumped again (addrconf may
        # have changed them silently): they did not change, so no event
        # but the link's own.
        ip(netns, "link", "set", "le0", "mtu", "1400")
        await exact(netns, view, ["link", "address", "route"])
        await asyncio.sleep(0.5)  # a poll of the settling link's addresses
        assert view.events - before == 1, f"{view.events - before} events for one mtu change"
        # The lifetime set again is announced (RTM_NEWADDR) and is an event.
        ip(netns, "addr", "change", "192.0.2.1/24", "dev", "le0", "valid_lft", "600", "preferred_lft", "200")
        await exact(netns, view, ["link", "address", "route"])
        assert view.events - before >= 2
