"""Throwaway network namespaces for the benchmarks.

Every namespace is named ``aionlmmap-bench-<random>`` (the prefix can be set
per run with ``AIONLMMAP_BENCH_NETNS_PREFIX``) and deleted when its
``with`` block ends, whatever happens inside. Commands run inside with
``ip netns exec`` / ``ip -n``: the host's own namespace is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["Namespace", "namespace", "netns_name", "NETNS_PREFIX", "namespace_pair", "require_root", "route_address", "SENTINEL_TABLE", "ROUTE_DEVICE", "BenchmarkSetupError"]

#: The device every benchmark route points at.
ROUTE_DEVICE = "bench0"
#: Routes in this table mark the end of a storm (rtm_table fits a u8).
SENTINEL_TABLE = 242
#: The start of every benchmark namespace's name. A caller that checks for
#: leaked namespaces gives its run a prefix of its own (the environment
#: variable), so namespaces other runs on the same host create meanwhile
#: are not taken for leaks of this one.
NETNS_PREFIX = os.environ.get("AIONLMMAP_BENCH_NETNS_PREFIX", "aionlmmap-bench-")


def netns_name(tag: str = "") -> str:
    """A fresh benchmark namespace name: the run's prefix, the tag, a random part."""
    return f"{NETNS_PREFIX}{tag + '-' if tag else ''}{uuid.uuid4().hex[:8]}"


class BenchmarkSetupError(RuntimeError):
    """The machine cannot run a scenario (not root, a tool is missing...)."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise BenchmarkSetupError("the benchmarks create network namespaces: run them as root")
    if shutil.which("ip") is None:
        raise BenchmarkSetupError("iproute2 (`ip`) is missing: apt-get install iproute2")


def _run(args: list[str], timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    if result.returncode != 0:
        raise BenchmarkSetupError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[:500]}")
    return result


def route_address(index: int) -> str:
    """The /32 destination number ``index`` (0 .. 2**24 - 2) under 10.0.0.0/8."""
    if not 0 <= index < (1 << 24) - 1:
        raise ValueError(f"route index {index} out of range")
    return f"10.{index >> 16}.{(index >> 8) & 0xFF}.{index & 0xFF}"


class Namespace:
    """One network namespace; use :func:`namespace`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", self.name, *args], timeout=timeout)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run([*self.exec_prefix(), *args], timeout=timeout)

    def ip_batch(self, lines: Iterable[str], timeout: float = 600) -> None:
        """Run many ``ip`` commands with one ``ip -batch`` (fast: one process)."""
        with tempfile.NamedTemporaryFile("w", prefix="aionlmmap-bench-", suffix=".batch", delete=False) as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
            path = handle.name
        try:
            _run(["ip", "-n", self.name, "-batch", path], timeout=timeout)
        finally:
            os.unlink(path)

    def add_route_device(self, name: str = ROUTE_DEVICE) -> str:
        """An up device to hang routes on: a dummy, or (kernels built without
        CONFIG_DUMMY, like some VM kernels) one end of a veth pair whose
        peer is up too, so the routes are not flagged linkdown."""
        try:
            self.ip("link", "add", name, "type", "dummy")
        except BenchmarkSetupError:
            self.ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
            self.ip("link", "set", name + "p", "up")
        self.ip("link", "set", name, "up")
        return name

    def add_routes(self, count: int, *, first: int = 0, device: str = ROUTE_DEVICE) -> None:
        """``count`` /32 routes 10.x.y.z via ``device`` in the main table."""
        self.ip_batch(f"route add {route_address(i)}/32 dev {device}" for i in range(first, first + count))


def _create(name: str) -> Namespace:
    _run(["ip", "netns", "add", name])
    space = Namespace(name)
    try:
        space.ip("link", "set", "lo", "up")
    except BaseException:
        _run_quiet(["ip", "netns", "del", name])
        raise
    return space


def _run_quiet(args: list[str]) -> None:
    subprocess.run(args, capture_output=True, timeout=60)


@contextmanager
def namespace(tag: str = "") -> Iterator[Namespace]:
    """A fresh namespace with ``lo`` up, deleted afterwards."""
    require_root()
    name = netns_name(tag)
    space = _create(name)
    try:
        yield space
    finally:
        _run_quiet(["ip", "netns", "del", name])


@contextmanager
def namespace_pair(tag: str = "") -> Iterator[tuple[Namespace, Namespace]]:
    """Two namespaces joined by veth: 10.98.0.1/24 (``sender``, veth0) and
    10.98.0.2/24 (``receiver``, veth1)."""
    with namespace(tag + "a") as sender, namespace(tag + "b") as receiver:
        sender.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", receiver.name)
        sender.ip("addr", "add", "10.98.0.1/24", "dev", "veth0")
        receiver.ip("addr", "add", "10.98.0.2/24", "dev", "veth1")
        sender.ip("link", "set", "veth0", "up")
        receiver.ip("link", "set", "veth1", "up")
        yield sender, receiver
