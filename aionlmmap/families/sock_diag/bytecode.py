"""The inet_diag bytecode filter (INET_DIAG_REQ_BYTECODE), compiled from
small condition objects: the kernel runs it on every socket of a dump and
sends only those it accepts (inet_diag_bc_run), after checking it
(inet_diag_bc_audit).

Pure: imports neither asyncio nor socket.

>>> flt = (sport(22) | dport_range(1024, 65535)) & ~dst("10.0.0.0/8")
>>> program = flt.compile()

A program is a list of ``struct inet_diag_bc_op {u8 code; u8 yes; u16 no}``
with operands after some. The kernel walks it forward: a true condition
moves ``yes`` bytes on, a false one ``no`` bytes; landing exactly at the end
accepts the socket, jumping past it (end + 4) rejects it. So every jump is
forward, which compiling the expression in order gives for free.
"""

from __future__ import annotations

import struct

from . import constants as c

TYPE_CHECKING = False  # typing stays out of start-up; type checkers take the branch
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Condition", "sport", "dport", "sport_range", "dport_range", "src", "dst", "mark", "dev", "cgroup", "everything"]

_OP = struct.Struct("=BBH")
_HOSTCOND = struct.Struct("=BBxxi")
_MARKCOND = struct.Struct("=II")


class Condition:
    """A filter expression: combine with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Condition) -> Condition:
        return _And(self, other)

    def __or__(self, other: Condition) -> Condition:
        return _Or(self, other)

    def __invert__(self) -> Condition:
        return _Not(self)

    def matches(self, sock: Any) -> bool:
        """The kernel's verdict (inet_diag_bc_run) computed here, for an
        :class:`InetSocket`: for events, or to check a kernel."""
        raise NotImplementedError

    def _emit(self, ops: list[Any], on_true: _Label | None, on_false: _Label) -> None:
        """Append ops that go to ``on_true`` (None: fall through past them)
        when the condition holds, else to ``on_false``."""
        raise NotImplementedError

    def compile(self) -> bytes:
        """The bytecode for INET_DIAG_REQ_BYTECODE.

        inet_diag_bc_audit checks every "no" target by walking the program
        from its start along "yes" jumps (valid_cc), so every "yes" here is
        the op's own length; a condition that must jump on success is
        followed by a JMP op (which always takes its "no", as ss emits)."""
        ops: list[Any] = []
        reject = _Label()
        self._emit(ops, None, reject)
        position = 0
        for op in ops:
            if isinstance(op, _Label):
                op.offset = position
            else:
                position += 4 + len(op[1])
        end = position
        reject.offset = end + 4
        out = bytearray()
        position = 0
        for op in ops:
            if isinstance(op, _Label):
                continue
            code, operand, target = op
            size = 4 + len(operand)
            jump = target.offset - position
            if jump > 0xFFFF:
                raise ValueError("filter too large for inet_diag bytecode (a jump exceeds 65535 bytes)")
            out += _OP.pack(code, size, jump) + operand
            position += size
        return bytes(out)


class _Label:
    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = -1


class _Leaf(Condition):
    def __init__(self, code: int, operand: bytes, text: str, test: Any) -> None:
        self.code = code
        self.operand = operand
        self.text = text
        self.test = test

    def matches(self, sock: Any) -> bool:
        return bool(self.test(sock))

    def _emit(self, ops: list[Any], on_true: _Label | None, on_false: _Label) -> None:
        ops.append((self.code, self.operand, on_false))
        if on_true is not None:
            ops.append((c.INET_DIAG_BC_JMP, b"", on_true))

    def __repr__(self) -> str:
        return self.text


class _And(Condition):
    def __init__(self, left: Condition, right: Condition) -> None:
        self.left, self.right = left, right

    def _emit(self, ops: list[Any], on_true: _Label | None, on_false: _Label) -> None:
        self.left._emit(ops, None, on_false)
        self.right._emit(ops, on_true, on_false)

    def matches(self, sock: Any) -> bool:
        return self.left.matches(sock) and self.right.matches(sock)

    def __repr__(self) -> str:
        return f"({self.left!r} and {self.right!r})"


class _Or(Condition):
    def __init__(self, left: Condition, right: Condition) -> None:
        self.left, self.right = left, right

    def _emit(self, ops: list[Any], on_true: _Label | None, on_false: _Label) -> None:
        after = on_true or _Label()
        middle = _Label()
        self.left._emit(ops, after, middle)
        ops.append(middle)
        self.right._emit(ops, on_true, on_false)
        if on_true is None:
            ops.append(after)

    def matches(self, sock: Any) -> bool:
        return self.left.matches(sock) or self.right.matches(sock)

    def __repr__(self) -> str:
        return f"({self.left!r} or {self.right!r})"


class _Not(Condition):
    def __init__(self, inner: Condition) -> None:
        self.inner = inner

    def _emit(self, ops: list[Any], on_true: _Label | None, on_false: _Label) -> None:
        after = on_true or _Label()
        self.inner._emit(ops, on_false, after)
        if on_true is None:
            ops.append(after)

    def matches(self, sock: Any) -> bool:
        return not self.inner.matches(sock)

    def __repr__(self) -> str:
        return f"not {self.inner!r}"


def _port(value: int) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"port {value} out of range 0..65535")
    return value


def _port_operand(value: int) -> bytes:
    # The port rides in the `no` field of a second op (inet_diag_bc_run
    # reads op[1].no).
    return _OP.pack(0, 0, _port(value))


def sport(port: int) -> Condition:
    """Local port equals ``port``."""
    return _Leaf(c.INET_DIAG_BC_S_EQ, _port_operand(port), f"sport == {port}", lambda sock: sock.local_port == port)


def dport(port: int) -> Condition:
    """Remote port equals ``port``."""
    return _Leaf(c.INET_DIAG_BC_D_EQ, _port_operand(port), f"dport == {port}", lambda sock: sock.peer_port == port)


def sport_range(low: int, high: int) -> Condition:
    """``low <= local port <= high``."""
    return (_Leaf(c.INET_DIAG_BC_S_GE, _port_operand(low), f"sport >= {low}", lambda sock: sock.local_port >= low)
            & _Leaf(c.INET_DIAG_BC_S_LE, _port_operand(high), f"sport <= {high}", lambda sock: sock.local_port <= high))  # fmt: skip


def dport_range(low: int, high: int) -> Condition:
    """``low <= remote port <= high``."""
    return (_Leaf(c.INET_DIAG_BC_D_GE, _port_operand(low), f"dport >= {low}", lambda sock: sock.peer_port >= low)
            & _Leaf(c.INET_DIAG_BC_D_LE, _port_operand(high), f"dport <= {high}", lambda sock: sock.peer_port <= high))  # fmt: skip


def _hostcond(prefix: str, port: int | None) -> bytes:
    import ipaddress  # here, not at import: `aionlmmap dump sockets` builds no filter

    network = ipaddress.ip_network(prefix, strict=False)
    family = c.AF_INET if network.version == 4 else c.AF_INET6
    return _HOSTCOND.pack(family, network.prefixlen, -1 if port is None else _port(port)) + network.network_address.packed


def _host_test(prefix: str, port: int | None, side: str) -> Any:
    import ipaddress

    network = ipaddress.ip_network(prefix, strict=False)

    def test(sock: Any) -> bool:
        if port is not None and getattr(sock, f"{side}_port") != port:
            return False
        address = ipaddress.ip_address(getattr(sock, f"{side}_address"))
        if address.version != network.version:
            # an IPv4 condition also matches IPv4-mapped IPv6 addresses
            mapped = getattr(address, "ipv4_mapped", None)
            return network.version == 4 and mapped is not None and mapped in network
        return address in network

    return test


def src(prefix: str, port: int | None = None) -> Condition:
    """Local address in ``prefix`` ("10.0.0.0/8", "::1"), and port if given.
    An IPv4 prefix also matches IPv4-mapped IPv6 sockets (inet_diag_bc_run)."""
    return _Leaf(c.INET_DIAG_BC_S_COND, _hostcond(prefix, port), f"src {prefix}" + (f":{port}" if port is not None else ""), _host_test(prefix, port, "local"))


def dst(prefix: str, port: int | None = None) -> Condition:
    """Remote address in ``prefix``, and port if given."""
    return _Leaf(c.INET_DIAG_BC_D_COND, _hostcond(prefix, port), f"dst {prefix}" + (f":{port}" if port is not None else ""), _host_test(prefix, port, "peer"))


def _extension(sock: Any, name: str) -> Any:
    return (sock.extensions or {}).get(name)


def mark(value: int, mask: int = 0xFFFFFFFF) -> Condition:
    """``(SO_MARK & mask) == value`` (the kernel honours it for CAP_NET_ADMIN)."""
    return _Leaf(c.INET_DIAG_BC_MARK_COND, _MARKCOND.pack(value, mask), f"mark {value:#x}/{mask:#x}", lambda sock: ((_extension(sock, "mark") or 0) & mask) == value)


def dev(ifindex: int) -> Condition:
    """Bound to interface ``ifindex`` (SO_BINDTODEVICE)."""
    return _Leaf(c.INET_DIAG_BC_DEV_COND, struct.pack("=I", ifindex), f"dev {ifindex}", lambda sock: sock.ifindex == ifindex)


def cgroup(cgroup_id: int) -> Condition:
    """In the cgroup v2 with this id (Linux >= 5.6)."""
    return _Leaf(c.INET_DIAG_BC_CGROUP_COND, struct.pack("=Q", cgroup_id), f"cgroup {cgroup_id}", lambda sock: _extension(sock, "cgroup_id") == cgroup_id)


def everything() -> Condition:
    """Always true (a NOP op)."""
    return _Leaf(c.INET_DIAG_BC_NOP, b"", "true", lambda sock: True)
