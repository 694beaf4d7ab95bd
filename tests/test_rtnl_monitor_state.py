"""The tracker's route semantics without a kernel: what each IPv4
notification's nlmsg_flags say (fib_table_insert), and when the view must be
settled by a dump instead."""

from __future__ import annotations

from aionlmmap.constants import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from aionlmmap.families.rtnl_objects import Event, Link, Nexthop, Route
from aionlmmap.families.rtnl_state import Scope, StateTracker, followed_kinds

ADD = NLM_F_EXCL | NLM_F_CREATE
APPEND = NLM_F_CREATE | NLM_F_APPEND
PREPEND = NLM_F_CREATE


def via(gateway: str, **fields: object) -> Route:
    return Route(family=2, table=254, dst="203.0.113.0", dst_len=24, gateway=gateway, oif=2, dev="d0", **fields)  # type: ignore[arg-type]


def tracker_with(*routes: Route) -> StateTracker:
    tracker = StateTracker(["link", "address", "route"])
    tracker.replace("route", routes)
    return tracker


def gateways(tracker: StateTracker) -> list[str]:
    run = tracker._runs[via("x").replace_key]  # noqa: SLF001 - the kernel's list order is what is tested
    return [tracker.state["route"][key].gateway for key in run]


def test_replace_takes_the_first_aliass_place_and_says_which_it_removed() -> None:
    tracker = tracker_with(via("192.0.2.1"), via("192.0.2.2"))
    events = tracker.apply_route("new", NLM_F_REPLACE, via("192.0.2.9"))
    assert events == [Event("del", "route", via("192.0.2.1")), Event("new", "route", via("192.0.2.9"))]
    assert gateways(tracker) == ["192.0.2.9", "192.0.2.2"]
    assert not tracker.dirty


def test_append_goes_last_and_prepend_first() -> None:
    tracker = tracker_with(via("192.0.2.1"))
    tracker.apply_route("new", APPEND, via("192.0.2.2"))
    tracker.apply_route("new", PREPEND, via("192.0.2.3"))
    assert gateways(tracker) == ["192.0.2.3", "192.0.2.1", "192.0.2.2"]
    tracker.apply_route("new", NLM_F_REPLACE, via("192.0.2.4"))
    assert gateways(tracker) == ["192.0.2.4", "192.0.2.1", "192.0.2.2"]


def test_a_dump_sets_the_order_replace_follows() -> None:
    tracker = tracker_with(via("192.0.2.2"), via("192.0.2.1"))
    tracker.apply_route("new", NLM_F_REPLACE, via("192.0.2.9"))
    assert gateways(tracker) == ["192.0.2.9", "192.0.2.1"]


def test_a_route_differing_only_in_state_flags_is_the_same_route_changed() -> None:
    tracker = tracker_with(via("192.0.2.1"))
    dead = via("192.0.2.1", flags=16)  # RTNH_F_LINKDOWN
    assert dead.key == via("192.0.2.1").key
    assert tracker.apply_route("new", NLM_F_REPLACE, dead) == [Event("new", "route", dead)]
    assert via("192.0.2.1", protocol=4).key != via("192.0.2.1").key  # a second alias (fib_info differs)


def test_order_dependent_notifications_wait_for_a_dump_while_order_is_uncertain() -> None:
    tracker = tracker_with(via("192.0.2.1"), via("192.0.2.2"))
    tracker.uncertain = True  # a dump was just taken with notifications queued
    assert tracker.apply_route("new", NLM_F_REPLACE, via("192.0.2.9")) == []
    assert tracker.dirty == {Scope("route", 2, 254)}
    # The first route of its key is certain anyway.
    other = Route(family=2, table=254, dst="198.51.100.0", dst_len=24, oif=2)
    assert tracker.apply_route("new", ADD, other) == [Event("new", "route", other)]


def test_ipv6_merges_and_unknown_deletes_are_left_to_the_tables_dump() -> None:
    tracker = StateTracker(["route"])
    single = Route(family=10, table=254, dst="2001:db8::", dst_len=64, priority=1024, gateway="fe80::1", oif=2)
    assert tracker.apply_route("new", ADD, single) == [Event("new", "route", single)]
    merged = Route(family=10, table=254, dst="2001:db8::", dst_len=64, priority=1024, nexthops=(Nexthop(2, "fe80::1"), Nexthop(3, "fe80::2")))
    assert tracker.apply_route("new", APPEND, merged) == []
    assert tracker.apply_route("del", 0, Route(family=10, table=100, dst="2001:db8:1::", dst_len=64, oif=2)) == []
    assert tracker.dirty == {Scope("route", 10, 254), Scope("route", 10, 100)}


def test_a_link_change_dirties_what_it_can_change_silently() -> None:
    tracker = StateTracker(["link", "address", "route"])
    tracker.replace("link", [Link(ifindex=2, ifname="d0", flags=1)])

    def resolve(link: Link, links: dict[int, Link]) -> Link:
        return link

    assert tracker.apply_link("new", Link(ifindex=2, ifname="d0", flags=1), resolve) == []
    assert not tracker.dirty  # nothing changed
    tracker.apply_link("new", Link(ifindex=2, ifname="d0", flags=0), resolve)
    assert tracker.dirty == {Scope("route", ifindex=2), Scope("address", ifindex=2)}


def test_routes_bring_addresses_links_and_nexthops_along() -> None:
    assert followed_kinds(["route"]) == ["link", "address", "route", "nexthop"]
    assert followed_kinds(["neighbour"]) == ["link", "neighbour"]


async def test_poll_0_turns_polling_off() -> None:
    from aionlmmap.families.rtnl_monitor import MonitorEngine

    assert MonitorEngine(None, None, ["neighbour"], poll=0)._next_poll() is None  # type: ignore[arg-type]
    assert MonitorEngine(None, None, ["neighbour"], poll=1.0)._next_poll() is not None  # type: ignore[arg-type]
    # Routes alone need no poll: nothing they depend on changes unannounced
    # without a hint.
    assert MonitorEngine(None, None, ["route"], poll=1.0)._next_poll() is None  # type: ignore[arg-type]


async def test_a_link_dump_that_shows_a_rename_first_resolves_the_links_naming_it() -> None:
    # A veth's peer is dumped again (it was announced with no peer); if the
    # peer was renamed meanwhile, the dump shows the new name before the
    # rename's RTM_NEWLINK is read, which then changes nothing: the link
    # naming the peer must be resolved again by the dump (seen in the
    # differential run, seed 5).
    import types

    import attrs

    from aionlmmap.families.rtnl_monitor import MonitorEngine, resolve

    engine = MonitorEngine(None, types.SimpleNamespace(_unsolicited=[]), ["link"], poll=0)  # type: ignore[arg-type]
    tracker = engine.tracker
    first = Link(ifindex=4, ifname="t43", link_ifindex=5, link="t44")
    peer = Link(ifindex=5, ifname="t44", link_ifindex=4, link="t43")
    tracker.replace("link", [first, peer])
    renamed = attrs.evolve(peer, ifname="t45")

    async def dump(scope: Scope, names: object) -> list[Link]:
        return [resolve(renamed, tracker.state["link"])]  # as _dump does

    engine._dump = dump  # type: ignore[method-assign]
    tracker.dirty.add(Scope("link", ifindex=5))
    events = await engine.reconcile()
    assert tracker.state["link"][4].link == "t45"
    assert [(event.obj.ifindex, event.obj.ifname, event.obj.link) for event in events] == [(5, "t45", "t43"), (4, "t43", "t45")]
    assert tracker.apply_link("new", renamed, resolve) == []
