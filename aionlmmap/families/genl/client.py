"""The generic netlink client: the controller (families, operations,
multicast groups, policies; cached per ring, resolved on demand), requests
and dumps of declared families, and their notifications."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import attrs

from ... import open as _open_ring
from ...attributes import iter_attributes
from ...constants import NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from ...errors import DecodeError, NetlinkError
from ...message import Message
from ...ring import Ring
from . import specs
from .spec import GENL_HDR, DecodeCounts, Family

__all__ = ["open", "GenlClient", "FamilyInfo", "Notification", "GENL_ID_CTRL", "declared"]

GENL_ID_CTRL = 0x10
_CTRL_CMD_GETFAMILY = 3
_CTRL_CMD_GETPOLICY = 10

_DECLARED: dict[str, Family] = {}


def declared(name: str) -> Family | None:
    """The declaration of a family by name (nlctrl, ethtool, netdev, or one
    added with :meth:`GenlClient.declare`)."""
    return _DECLARED.get(name)


for _spec in specs.ALL:
    _family = Family.from_spec(_spec)
    _DECLARED[_family.name] = _family
NLCTRL = _DECLARED["nlctrl"]


def open(netns: Any = None, **ring_options: Any) -> GenlClient:
    """A generic netlink client: ``async with genl.open() as gn: ...``"""
    return GenlClient(_open_ring(NETLINK_GENERIC, netns=netns, **ring_options), netns=netns)


@attrs.frozen
class FamilyInfo:
    """What the controller says about a registered family (``genl ctrl list``)."""

    name: str
    id: int
    version: int
    hdrsize: int
    maxattr: int
    ops: tuple[tuple[int, int], ...]  #: (command, CTRL_ATTR_OP_FLAGS)
    mcast_groups: dict[str, int] = attrs.field(hash=False)

    @classmethod
    def from_attributes(cls, values: Mapping[str, Any]) -> FamilyInfo:
        return cls(
            values.get("family-name", ""), values.get("family-id", 0), values.get("version", 0), values.get("hdrsize", 0), values.get("maxattr", 0),
            tuple((op.get("id", 0), op.get("flags", 0)) for op in values.get("ops", ())),
            {group.get("name", ""): group.get("id", 0) for group in values.get("mcast-groups", ())},
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "id": self.id, "version": self.version, "hdrsize": self.hdrsize, "maxattr": self.maxattr,
            "ops": [{"id": op, "flags": flags} for op, flags in self.ops],
            "mcast_groups": [{"name": name, "id": group} for name, group in self.mcast_groups.items()],
        }  # fmt: skip


@attrs.frozen
class Notification:
    """One multicast message of a declared family: ``op`` is the operation
    (e.g. "linkinfo-ntf"), ``attrs`` the decoded attributes."""

    family: str
    op: str
    attrs: dict[str, Any] = attrs.field(hash=False)

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "op": self.op, "attrs": _jsonable(self.attrs)}


def _shift_policy(entry: dict[str, Any], offset: int) -> dict[str, Any]:
    return {**entry, "policy-idx": entry["policy-idx"] + offset} if "policy-idx" in entry else entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


class GenlClient:
    """Generic netlink over one NETLINK_GENERIC ring (``gn.ring``).

    Family ids and groups are resolved through the controller and cached on
    this client (its ring); a family registered later (a module loaded
    after the first dump) is resolved on demand. ``gn.counts`` counts
    attributes a declaration did not know and malformed replies."""

    def __init__(self, ring: Ring, *, netns: Any = None) -> None:
        self.ring = ring
        self.netns = netns
        self.counts = DecodeCounts()
        self._families: dict[str, FamilyInfo] = {}

    async def __aenter__(self) -> GenlClient:
        await self.ring.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ring.aclose()

    async def aclose(self) -> None:
        await self.ring.aclose()

    @staticmethod
    def declare(spec: Mapping[str, Any]) -> Family:
        """Add a family declaration (YNL-shaped data) for later requests."""
        family = Family.from_spec(spec)
        _DECLARED[family.name] = family
        return family

    # -- the controller ----------------------------------------------------------------
    def _decode(self, family: Family, msg: Message) -> tuple[str, dict[str, Any]] | None:
        buffer, start, end = msg[6].buffer, msg[4], msg[5]
        if end - start < GENL_HDR.size:
            self.counts.malformed += 1
            return None
        op = family.reply_operation(buffer[start])
        if op is None:
            self.counts.unknown_attributes += 1
            return None
        try:
            return op.name, family.decode(op.attribute_set, buffer, start + GENL_HDR.size, end, self.counts)
        except DecodeError:
            self.counts.malformed += 1
            return None

    async def families(self) -> list[FamilyInfo]:
        """Every registered family (CTRL_CMD_GETFAMILY dump); refreshes the cache."""
        request = Message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_DUMP, payload=GENL_HDR.pack(_CTRL_CMD_GETFAMILY, 2, 0))
        out = []
        async for msg in self.ring.dump(request):
            if msg[0] != GENL_ID_CTRL:
                continue
            decoded = self._decode(NLCTRL, msg)
            if decoded is not None:
                info = FamilyInfo.from_attributes(decoded[1])
                self._families[info.name] = info
                out.append(info)
        return out

    async def resolve(self, name: str, *, refresh: bool = False) -> FamilyInfo:
        """The controller's entry for ``name``, cached; ``FileNotFoundError``
        if the kernel has no such family (not built, or its module not loaded)."""
        info = None if refresh else self._families.get(name)
        if info is not None:
            return info
        payload = GENL_HDR.pack(_CTRL_CMD_GETFAMILY, 2, 0) + NLCTRL.encode("ctrl-attrs", {"family-name": name})
        try:
            replies = await self.ring.request(Message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, payload=payload))
        except NetlinkError as exc:
            if exc.errno == errno.ENOENT:
                raise NetlinkError(errno.ENOENT, f"generic netlink family {name!r} is not registered in this kernel (not built in, or its module is not loaded)") from None
            raise
        for msg in replies:
            decoded = self._decode(NLCTRL, msg) if msg[0] == GENL_ID_CTRL else None
            if decoded is not None:
                info = FamilyInfo.from_attributes(decoded[1])
                self._families[info.name] = info
                return info
        raise DecodeError(f"the controller answered for {name!r} without a family")

    async def policy(self, name: str, op: int | None = None) -> dict[str, Any]:
        """CTRL_CMD_GETPOLICY (Linux >= 5.10): ``{"policies": {index: {attr:
        {type, min/max...}}}, "ops": {command: {"do": index, "dump": index}}}``.

        The kernel files a dump-only command under command 0 in a whole-family
        dump (ctrl_dumppolicy_put_op nests it under ``doit->cmd``, which is
        zero without a doit); such commands are asked for one by one and their
        policy tables merged in under new indexes."""
        info = await self.resolve(name)
        policies, ops = await self._policy_dump(info.id, op)
        if op is None and 0 in ops and 0 not in {command for command, _flags in info.ops}:
            del ops[0]
            for command, _flags in info.ops:
                if command in ops:
                    continue
                more_policies, more_ops = await self._policy_dump(info.id, command)
                if not more_ops:
                    continue
                offset = max(policies, default=-1) + 1
                for index, table in more_policies.items():
                    policies[index + offset] = {attr: _shift_policy(entry, offset) for attr, entry in table.items()}
                ops[command] = {key: value + offset for key, value in next(iter(more_ops.values())).items()}
        elif op is not None and ops:
            ops = {op: next(iter(ops.values()))}
        return {"policies": policies, "ops": ops}

    async def _policy_dump(self, family_id: int, op: int | None) -> tuple[dict[int, dict[int, dict[str, Any]]], dict[int, dict[str, int]]]:
        from .specs.nlctrl import POLICY_TYPE_NAMES

        values: dict[str, Any] = {"family-id": family_id}
        if op is not None:
            values["op"] = op
        request = Message(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_DUMP, payload=GENL_HDR.pack(_CTRL_CMD_GETPOLICY, 2, 0) + NLCTRL.encode("ctrl-attrs", values))
        policies: dict[int, dict[int, dict[str, Any]]] = {}
        ops: dict[int, dict[str, int]] = {}
        async for msg in self.ring.dump(request):
            decoded = self._decode(NLCTRL, msg) if msg[0] == GENL_ID_CTRL else None
            if decoded is None:
                continue
            found = decoded[1]
            raw = found.get("policy")
            if raw is not None:
                for index, start, end in iter_attributes(raw):
                    for attr_type, a_start, a_end in iter_attributes(raw, start, end):
                        entry = NLCTRL.decode("policy-attrs", raw, a_start, a_end, self.counts)
                        if "type" in entry:
                            number = entry["type"]
                            entry["type"] = POLICY_TYPE_NAMES[number] if number < len(POLICY_TYPE_NAMES) else number
                        policies.setdefault(index, {})[attr_type] = entry
            raw = found.get("op-policy")
            if raw is not None:
                for command, start, end in iter_attributes(raw):
                    ops[command] = NLCTRL.decode("op-policy-attrs", raw, start, end, self.counts)
        return policies, ops

    # -- requests of declared families -------------------------------------------------
    def _family(self, family: Family | str) -> Family:
        if isinstance(family, Family):
            return family
        found = _DECLARED.get(family)
        if found is None:
            raise ValueError(f"no declaration for generic netlink family {family!r}: declare it with GenlClient.declare(spec)")
        return found

    async def _message(self, family: Family, op_name: str, values: Mapping[str, Any] | None, flags: int) -> tuple[Message, int]:
        op = family.operation(op_name)
        info = await self.resolve(family.name)
        payload = GENL_HDR.pack(op.value, family.version, 0) + family.encode(op.attribute_set, values or {})
        return Message(info.id, flags, payload=payload), info.id

    async def request(self, family: Family | str, op: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """One ``do`` request; the decoded replies (kernel errors raise
        :class:`aionlmmap.NetlinkError` with the extack text)."""
        declared_family = self._family(family)
        msg, family_id = await self._message(declared_family, op, values, NLM_F_REQUEST | NLM_F_ACK)
        out = []
        for reply in await self.ring.request(msg):
            if reply[0] == family_id:
                decoded = self._decode(declared_family, reply)
                if decoded is not None:
                    out.append(decoded[1])
        return out

    async def dump(self, family: Family | str, op: str, values: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """A ``dump`` of ``op``, streamed as decoded attribute dicts."""
        declared_family = self._family(family)
        msg, family_id = await self._message(declared_family, op, values, NLM_F_REQUEST | NLM_F_DUMP)
        async for reply in self.ring.dump(msg):
            if reply[0] == family_id:
                decoded = self._decode(declared_family, reply)
                if decoded is not None:
                    yield decoded[1]

    async def monitor(self, family: Family | str, groups: Iterable[str] | None = None, **ring_options: Any) -> AsyncIterator[Notification]:
        """Notifications of a declared family's multicast ``groups`` (default
        all it declares), on a ring of their own. An overrun raises
        :class:`aionlmmap.OverrunError` (iterate again to go on)."""
        declared_family = self._family(family)
        info = await self.resolve(declared_family.name)
        names = list(groups) if groups is not None else list(declared_family.mcast_groups)
        missing = [name for name in names if name not in info.mcast_groups]
        if missing:
            raise ValueError(f"family {declared_family.name!r} has no multicast group {missing[0]!r} here (it has {', '.join(info.mcast_groups) or 'none'})")
        ring = _open_ring(NETLINK_GENERIC, groups=[info.mcast_groups[name] for name in names], netns=self.netns, **ring_options)
        async with ring:
            async for msg in ring:
                if msg[0] != info.id:
                    continue
                decoded = self._decode(declared_family, msg)
                if decoded is not None:
                    yield Notification(declared_family.name, decoded[0], decoded[1])
