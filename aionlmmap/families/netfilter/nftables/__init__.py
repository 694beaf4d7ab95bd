"""nf_tables over asyncio: atomic transactions and dumps.

>>> async with nftables.open(netns="fw") as nft:
...     async with nft.transaction() as tx:
...         tx.add_table("inet", "fw")
...         tx.add_chain("inet", "fw", "input", hook="input", priority=0, policy="accept")
...         blocklist = tx.add_set("inet", "fw", "blocklist", key_type="ipv4_addr", flags={"timeout"})
...         tx.add_elements(blocklist, ["10.0.0.7"], timeout=60)
...         tx.add_rule("inet", "fw", "input", [*ip_saddr_in("blocklist"), Counter(), DROP])
...     print(await nft.rules("inet", "fw"))

How a commit travels (kernel behaviour in ``nfnetlink_rcv_batch``, checked
on Linux 6.x):

- The batch is one datagram: NFNL_MSG_BATCH_BEGIN, the operations,
  NFNL_MSG_BATCH_END. BEGIN must be the FIRST message of the datagram
  (otherwise every message is refused with EINVAL) and anything after END
  in the same datagram is silently ignored. So the batch is written with
  ``send_nowait(..., atomic=True)`` and flushed on its own, and every other
  request of this client waits behind a lock meanwhile.
- BEGIN carries NFNL_BATCH_GENID, the generation read when the transaction
  opened: if anyone changed the ruleset since, the kernel refuses the whole
  batch with ERESTART (:class:`GenerationChangedError`).
- Every operation asks for an ACK. If one fails, the kernel aborts the
  batch, answers each failed message with its error (and extack), ACKs the
  others although nothing was applied, and never ACKs END. Waiting for
  END's ACK would therefore hang; instead a NLMSG_NOOP barrier with
  NLM_F_ACK follows in a separate datagram. The kernel answers one socket's
  datagrams in order, so when the barrier's ACK arrives every answer to
  the batch has arrived before it.
- Operations are sent with NLM_F_ECHO, so the kernel also returns the
  created objects with their handles (``tx.results``).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import attrs

from .... import open as _open_ring  # aionlmmap.open
from ...._sys import NetnsSpec
from ....constants import NETLINK_NETFILTER, NLM_F_ACK, NLM_F_ECHO, NLM_F_REQUEST, NLMSG_ERROR, NLMSG_NOOP
from ....errors import Error, NetlinkError, OverrunError
from ....frames import RingConfig
from ....message import Message
from ....protocol import parse_error
from ..nfnetlink import batch_begin, batch_end
from .codec import (
    NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE,
    NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM,
    NFT_MSG_NEWTABLE,
    Chain,
    Element,
    Rule,
    Set,
    Table,
    decode_chain,
    decode_element_records,
    elements_from_records,
    decode_genid,
    decode_rule,
    decode_set,
    decode_table,
    describe_offset,
    encode_chain,
    encode_delete,
    encode_dump,
    encode_elements,
    encode_getgen,
    encode_rule,
    encode_set,
    encode_table,
)
from . import expr as _expr
from .expr import *  # noqa: F401,F403  (the rule builder, re-exported)
from .expr import Expression

__all__ = [
    "open",
    "Nftables",
    "Transaction",
    "Operation",
    "GenerationChangedError",
    "Table",
    "Chain",
    "Set",
    "Element",
    "Rule",
    *_expr.__all__,
]

#: A transaction must fit one TX frame (one datagram): 256 KiB frames.
DEFAULT_NFT_TX = RingConfig(block_size=262144, block_nr=4, frame_size=262144, frame_nr=4)
_SEQ_BASE = 0x80000000  # transaction seqs live apart from the ring's request seqs (which count up from 1)
_DECODERS = {
    NFT_MSG_NEWTABLE: decode_table,
    NFT_MSG_NEWCHAIN: decode_chain,
    NFT_MSG_NEWSET: decode_set,
    NFT_MSG_NEWRULE: decode_rule,
}


class GenerationChangedError(Error):
    """Someone changed the ruleset after this transaction read its generation
    id; the kernel refused the whole batch (ERESTART) and nothing changed.
    Re-read the state the transaction depends on and run it again."""


@attrs.frozen
class Operation:
    """One operation of a transaction: its position, what it does (as nft
    would say it), the message sent, and the object it adds or deletes."""

    index: int
    description: str
    message: Message = attrs.field(repr=False, eq=False)
    subject: Any = attrs.field(repr=False, eq=False, default=None)


class Transaction:
    """Operations collected and committed atomically. Use
    ``async with nft.transaction() as tx:`` (commits on a clean exit,
    discards on an exception) or call :meth:`commit` yourself."""

    def __init__(self, nft: Nftables, generation: int | None) -> None:
        self._nft = nft
        self.generation = generation  #: ruleset generation the transaction is checked against
        self.operations: list[Operation] = []
        self.results: dict[int, Any] = {}  #: operation index -> object echoed by the kernel (with its handle)
        self.committed = False
        self._set_ids: dict[str, int] = {}

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and not self.committed:
            await self.commit()

    def _add(self, description: str, message: Message, subject: Any = None, echo: bool = True) -> Operation:
        if self.committed:
            raise RuntimeError("this transaction was already committed; open a new one")
        if echo:
            message = message.with_header(flags=message.flags | NLM_F_ECHO)
        operation = Operation(len(self.operations), description, message, subject)
        self.operations.append(operation)
        return operation

    # -- operations -------------------------------------------------------------------
    def add_table(self, family: str, name: str, *, exclusive: bool = False) -> Table:
        """``add table`` (``create table`` with ``exclusive=True``: EEXIST if it exists)."""
        table = Table(family, name)
        self._add(f"{'create' if exclusive else 'add'} table {family} {name}", encode_table(table, exclusive=exclusive), table)
        return table

    def add_chain(self, family: str, table: str, name: str, *, hook: str | None = None, priority: int = 0, type: str = "filter",
                  policy: str | None = None, device: str | None = None, exclusive: bool = False) -> Chain:
        """``add chain``; a base chain when ``hook`` is given."""
        chain = Chain(family, table, name, hook, priority, type, policy, device)
        self._add(f"add chain {family} {table} {name}", encode_chain(chain, exclusive=exclusive), chain)
        return chain

    def add_set(self, family: str, table: str, name: str, *, key_type: str = "ipv4_addr", flags: Iterable[str] = (),
                timeout: float | None = None, gc_interval: float | None = None, exclusive: bool = False) -> Set:
        """``add set``: ``flags`` from interval, timeout, constant, dynamic; ``timeout`` in seconds."""
        nft_set = Set(family, table, name, key_type, frozenset(flags), timeout, gc_interval)
        set_id = self._nft._new_set_id()
        self._set_ids[name] = set_id
        self._add(f"add set {family} {table} {name}", encode_set(nft_set, set_id, exclusive=exclusive), nft_set)
        return nft_set

    def add_elements(self, nft_set: Set, elements: Iterable[Any], *, timeout: float | None = None) -> None:
        """``add element``: keys (``"10.0.0.1"``), or :class:`Element` for
        ranges (``Element("10.0.0.0", key_end="10.0.0.255")``) and per-element timeouts."""
        items = [item if isinstance(item, Element) else Element(item, timeout=timeout) for item in elements]
        if not items:
            return
        message = encode_elements(nft_set, items, set_id=self._set_ids.get(nft_set.name))
        self._add(f"add element {nft_set.family} {nft_set.table} {nft_set.name} ({len(items)} elements)", message, items, echo=False)

    def delete_elements(self, nft_set: Set, elements: Iterable[Any]) -> None:
        items = [item if isinstance(item, Element) else Element(item) for item in elements]
        message = encode_elements(nft_set, items, delete=True)
        self._add(f"delete element {nft_set.family} {nft_set.table} {nft_set.name} ({len(items)} elements)", message, items, echo=False)

    def flush_set(self, family: str, table: str, name: str) -> None:
        self._add(f"flush set {family} {table} {name}", encode_delete("elements", family, table, name), echo=False)

    def add_rule(self, family: str, table: str, chain: str, expressions: Sequence[Expression], *, comment: str | None = None,
                 position: int | None = None, append: bool = True) -> Rule:
        """``add rule`` (``insert rule`` with ``append=False``); ``position``
        is the handle to add after (before, when inserting)."""
        rule = Rule(family, table, chain, tuple(expressions), comment, None, position)
        message = encode_rule(rule, set_ids=self._set_ids, append=append)
        self._add(f"{'add' if append else 'insert'} rule {family} {table} {chain}", message, rule)
        return rule

    def delete_table(self, family: str, name: str) -> None:
        self._add(f"delete table {family} {name}", encode_delete("table", family, name), echo=False)

    def delete_chain(self, family: str, table: str, name: str) -> None:
        self._add(f"delete chain {family} {table} {name}", encode_delete("chain", family, table, name), echo=False)

    def delete_set(self, family: str, table: str, name: str) -> None:
        self._add(f"delete set {family} {table} {name}", encode_delete("set", family, table, name), echo=False)

    def delete_rule(self, family: str, table: str, chain: str, handle: int) -> None:
        self._add(f"delete rule {family} {table} {chain} handle {handle}", encode_delete("rule", family, table, chain=chain, handle=handle), echo=False)

    def flush_chain(self, family: str, table: str, chain: str) -> None:
        """Delete every rule of ``chain`` (DELRULE without a handle)."""
        self._add(f"flush chain {family} {table} {chain}", encode_delete("rule", family, table, chain=chain), echo=False)

    async def commit(self, *, timeout: float = 10.0) -> None:
        """Apply every operation atomically, or none.

        Raises the failing operation's :class:`NetlinkError` (an OSError of
        the errno's subclass: FileExistsError, FileNotFoundError, ...) with
        ``.operation`` (the :class:`Operation`), ``.errors`` (every failure),
        and the kernel's extack text; :class:`GenerationChangedError` if the
        ruleset changed since the transaction opened."""
        if self.committed:
            raise RuntimeError("this transaction was already committed")
        self.committed = True
        if self.operations:
            await self._nft._commit(self, timeout)


class Nftables:
    """An nf_tables client on one netlink socket. Use :func:`open`."""

    def __init__(self, ring: Any) -> None:
        self.ring = ring
        self._lock = asyncio.Lock()
        self._replies: AsyncIterator[Message] | None = None
        self._next_seq = _SEQ_BASE
        self._next_set_id = 1
        self.stray_messages = 0  #: replies to abandoned transactions, skipped

    async def __aenter__(self) -> Nftables:
        await self.ring.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.ring.aclose()

    def _new_set_id(self) -> int:
        set_id = self._next_set_id
        self._next_set_id = set_id + 1 if set_id < 0xFFFFFFFF else 1
        return set_id

    def _take_seq(self) -> int:
        seq = self._next_seq
        self._next_seq = seq + 1 if seq < 0xFFFFFFFF else _SEQ_BASE
        return seq

    # -- reads ----------------------------------------------------------------------------
    async def generation(self) -> int:
        """The ruleset generation id (NFT_MSG_GETGEN); it changes with every commit."""
        async with self._lock:
            replies = await self.ring.request(encode_getgen())
        for reply in replies:
            if reply.type & 0xFF == 15:  # NFT_MSG_NEWGEN
                return decode_genid(reply)
        raise NetlinkError(errno.EPROTO, "the kernel answered NFT_MSG_GETGEN without a generation id")

    def transaction(self, *, check_generation: bool = True) -> _TransactionContext:
        """``async with nft.transaction() as tx:``; with ``check_generation``
        the commit fails (:class:`GenerationChangedError`) if the ruleset
        changed after the transaction opened."""
        return _TransactionContext(self, check_generation)

    async def _dump(self, request: Message) -> list[Message]:
        async with self._lock:
            return await self.ring.dump_all(request)  # type: ignore[no-any-return]

    async def tables(self, family: str | int = 0) -> list[Table]:
        return [decode_table(msg) for msg in await self._dump(encode_dump("tables", family))]

    async def chains(self, family: str | int = 0, table: str | None = None) -> list[Chain]:
        return [decode_chain(msg) for msg in await self._dump(encode_dump("chains", family, table=table))]

    async def sets(self, family: str | int = 0, table: str | None = None) -> list[Set]:
        return [decode_set(msg) for msg in await self._dump(encode_dump("sets", family, table=table))]

    async def rules(self, family: str | int = 0, table: str | None = None, chain: str | None = None) -> list[Rule]:
        return [decode_rule(msg) for msg in await self._dump(encode_dump("rules", family, table=table, chain=chain))]

    async def elements(self, nft_set: Set) -> list[Element]:
        """The elements of ``nft_set`` (a :class:`Set` from :meth:`sets` or ``add_set``)."""
        messages = await self._dump(encode_dump("elements", nft_set.family, table=nft_set.table, name=nft_set.name))
        records = []
        for msg in messages:
            if msg.type & 0xFF == NFT_MSG_NEWSETELEM:
                records.extend(decode_element_records(msg))
        # Folded across messages: a range's start and end may sit in different chunks.
        return elements_from_records(records, nft_set.key_type, "interval" in nft_set.flags)

    async def get_set(self, family: str, table: str, name: str) -> Set:
        for nft_set in await self.sets(family, table):
            if nft_set.name == name:
                return nft_set
        raise NetlinkError(errno.ENOENT, f"no set {name!r} in table {family} {table}")

    # -- commit ---------------------------------------------------------------------------
    async def _next_reply(self) -> Message:
        while True:
            if self._replies is None:
                self._replies = self.ring.__aiter__()
            try:
                return await self._replies.__anext__()  # type: ignore[no-any-return]
            except OverrunError:
                # Answers may be lost; the barrier's timeout reports it if so.
                self._replies = None
            except BaseException:
                self._replies = None  # the generator is finished now; a new one next time
                raise

    async def _commit(self, transaction: Transaction, timeout: float) -> None:
        async with self._lock:
            operations = transaction.operations
            begin_seq = self._take_seq()
            by_seq: dict[int, Operation | None] = {begin_seq: None}
            flags = NLM_F_REQUEST | NLM_F_ACK
            messages = [batch_begin(genid=transaction.generation).with_header(flags=flags, seq=begin_seq)]
            for operation in operations:
                seq = self._take_seq()
                by_seq[seq] = operation
                messages.append(operation.message.with_header(flags=operation.message.flags | flags, seq=seq))
            messages.append(batch_end().with_header(flags=flags, seq=self._take_seq()))
            barrier_seq = self._take_seq()
            ring = self.ring
            portid = ring.portid
            failures: list[tuple[Operation | None, NetlinkError]] = []
            async with asyncio.timeout(timeout):
                ring.send_nowait(*messages, atomic=True)
                await ring.drain()
                # A datagram of its own (see the module docstring).
                ring.send_nowait(Message(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq=barrier_seq))
                while True:
                    msg = await self._next_reply()
                    seq = msg.seq
                    if msg.pid != portid or (seq not in by_seq and seq != barrier_seq):
                        self.stray_messages += 1
                        continue
                    if msg.type == NLMSG_ERROR:
                        report = parse_error(msg)
                        if seq == barrier_seq:
                            break
                        if report.error:
                            failures.append((by_seq[seq], report.to_exception(msg)))
                        continue
                    answered = by_seq[seq]
                    decoder = _DECODERS.get(msg.type & 0xFF)
                    if answered is not None and decoder is not None:
                        transaction.results[answered.index] = decoder(msg)
        if failures:
            raise _transaction_error(failures)


def _transaction_error(failures: list[tuple[Operation | None, NetlinkError]]) -> Exception:
    operation, error = failures[0]
    if operation is None:
        if error.errno == errno.ERESTART:
            return GenerationChangedError(
                "the ruleset changed after this transaction read generation id; nothing was applied: "
                "re-read what the transaction depends on and run it again"
            )
        return NetlinkError(error.errno or 0, f"the kernel refused the batch: {error.extack_message or error.strerror}", error.extack_offset)
    text = f"operation #{operation.index} ({operation.description}) failed"
    if error.extack_message:
        text += f": {error.extack_message}"
    where = describe_offset(operation.message, error.extack_offset)
    if where:
        text += f" (at {where})"
    text += "; nothing in the transaction was applied"
    if len(failures) > 1:
        others = ", ".join(f"#{op.index}" for op, _err in failures[1:] if op is not None)
        text += f" (also failed: {others})"
    exc = NetlinkError(error.errno or 0, text, error.extack_offset, operation.message)
    exc.operation = operation  # type: ignore[attr-defined]
    exc.errors = failures  # type: ignore[attr-defined]
    return exc


class _TransactionContext:
    def __init__(self, nft: Nftables, check_generation: bool) -> None:
        self._nft = nft
        self._check = check_generation
        self._transaction: Transaction | None = None

    async def __aenter__(self) -> Transaction:
        generation = await self._nft.generation() if self._check else None
        self._transaction = Transaction(self._nft, generation)
        return self._transaction

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._transaction is not None
        await self._transaction.__aexit__(exc_type, exc, tb)


def open(*, netns: NetnsSpec = None, tx: RingConfig | None = None, rx: RingConfig | None = None, backend: str = "auto") -> Nftables:
    """An nf_tables client (``async with nftables.open(netns="fw") as nft:``).

    ``tx`` frames bound the size of one transaction (256 KiB by default:
    several thousand set elements)."""
    ring = _open_ring(NETLINK_NETFILTER, netns=netns, tx=tx or DEFAULT_NFT_TX, rx=rx, backend=backend)  # type: ignore[arg-type]
    return Nftables(ring)
