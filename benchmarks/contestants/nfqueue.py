"""nfqueue consumers (scenario ``nfqueue``), run inside the receiving
namespace: ``python -m benchmarks.contestants.nfqueue NAME --count N``.

A consumer binds queue 0 (no fail-open, so a full queue drops instead of
bypassing it), prints ``ready``, waits for a line on stdin, accepts every
packet, and stops after ``--count`` packets, 2 s without a packet once
traffic began, or 60 s. With ``--prequeued`` it first asks for a queue and
a receive buffer that hold ``--count`` packets (the driver floods before
sending the line). It prints ``{"count", "elapsed"}``: verdicts given and
the time from the first to the last packet.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
import time
from typing import Any

from ._child import emit, run_on_loop, unavailable

QUEUE = 0
IDLE_SECONDS = 2.0
DEADLINE_SECONDS = 60.0
#: receive buffer for a prequeued backlog (about 4 KiB per queued packet)
BACKLOG_RCVBUF = 256 * 1024 * 1024


def wait_for_go() -> None:
    """Block until the driver's line on stdin (the flood has started, or is queued)."""
    sys.stdin.readline()


class Clock:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.started = time.perf_counter()

    def expired(self) -> bool:
        now = time.perf_counter()
        return now - self.started > DEADLINE_SECONDS or bool(self.last and now - self.last > IDLE_SECONDS)

    def result(self) -> tuple[int, float]:
        return self.count, max(self.last - self.first, 1e-9)


def aionlmmap_queue(args: argparse.Namespace) -> tuple[int, float]:
    """``async for batch in queue.batches(): for packet in batch:
    packet.accept()`` (``--per-packet``: ``async for packet in queue``);
    verdicts leave in batches on the TX ring (see aionlmmap.families.nfqueue)."""
    import asyncio

    try:
        from aionlmmap.families.netfilter import nfqueue
    except ImportError as error:
        unavailable(f"aionlmmap.families.nfqueue is not importable yet ({error})")
    clock = Clock()

    async def main() -> tuple[int, float]:
        backlog: dict[str, Any] = {"maxlen": args.count + 1024, "rcvbuf": BACKLOG_RCVBUF} if args.prequeued else {}
        async with nfqueue.open(QUEUE, fail_open=False, copy_range=0xFFFF, **backlog) as queue:
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, wait_for_go)

            async def consume() -> None:
                count = 0
                first = 0.0
                async for packet in queue:
                    packet.accept()
                    count += 1
                    if count == 1:
                        first = time.perf_counter()
                        clock.first = first
                    if count & 63 == 0:
                        clock.count, clock.last = count, time.perf_counter()
                    if count >= args.count:
                        break
                clock.count, clock.last = count, time.perf_counter()

            async def consume_batches() -> None:
                # queue.batches(): every packet waiting, one iterator step per
                # list; still one accept() per packet (NetfilterQueue's
                # callback is per packet too).
                count = 0
                async for batch in queue.batches():
                    if not count:
                        clock.first = time.perf_counter()
                    for packet in batch:
                        packet.accept()
                    count += len(batch)
                    clock.count, clock.last = count, time.perf_counter()
                    if count >= args.count:
                        break

            task = asyncio.ensure_future(consume() if args.per_packet else consume_batches())
            while not task.done():
                await asyncio.wait([task], timeout=0.25)
                if not task.done() and clock.expired():
                    task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await asyncio.sleep(0.05)  # let the last verdict batch leave
        return clock.result()

    return run_on_loop(main, args.loop)  # type: ignore[no-any-return]


def netfilterqueue_queue(args: argparse.Namespace) -> tuple[int, float]:
    """NetfilterQueue (libnetfilter_queue via Cython), one verdict per packet."""
    try:
        from netfilterqueue import NetfilterQueue
    except ImportError:
        unavailable("NetfilterQueue is not installed: pip install NetfilterQueue (builds against libnetfilter-queue-dev)")
    clock = Clock()

    def on_packet(packet: Any) -> None:
        packet.accept()
        clock.count += 1
        clock.last = time.perf_counter()
        if clock.count == 1:
            clock.first = clock.last

    nfq = NetfilterQueue()
    if args.prequeued:
        nfq.bind(QUEUE, on_packet, max_len=args.count + 1024)
    else:
        nfq.bind(QUEUE, on_packet)
    sock = socket.fromfd(nfq.get_fd(), socket.AF_NETLINK, socket.SOCK_RAW)
    if args.prequeued:
        sock.setsockopt(socket.SOL_SOCKET, 33, BACKLOG_RCVBUF)  # SO_RCVBUFFORCE
    try:
        print("ready", flush=True)
        wait_for_go()
        while clock.count < args.count and not clock.expired():
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                nfq.run(block=False)
    finally:
        sock.close()
        nfq.unbind()
    return clock.result()


def fnfqueue_queue(args: argparse.Namespace) -> tuple[int, float]:
    """fnfqueue (cffi, a reader thread, chunked receive), one verdict per packet."""
    try:
        import fnfqueue
    except ImportError:
        unavailable("fnfqueue is not installed: pip install fnfqueue")
    clock = Clock()
    connection = fnfqueue.Connection()
    queue = connection.bind(QUEUE)
    queue.set_mode(0xFFFF, fnfqueue.COPY_PACKET)
    stop = threading.Event()

    def watchdog() -> None:
        while not stop.wait(0.25):
            if clock.expired():
                connection.close()  # ends the iteration below
                return

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    print("ready", flush=True)
    wait_for_go()
    overruns = 0
    try:
        while clock.count < args.count and not clock.expired():
            try:
                for packet in connection:
                    packet.accept()
                    clock.count += 1
                    clock.last = time.perf_counter()
                    if clock.count == 1:
                        clock.first = clock.last
                    if clock.count >= args.count:
                        break
                else:
                    break  # the watchdog closed the connection
            except fnfqueue.BufferOverflowException:
                # ENOBUFS: the socket overflowed. Iterating on after it made
                # fnfqueue's reader allocate without bound here (GiBs within
                # seconds), so the run ends at the first overflow.
                overruns += 1
                break
    except OSError:
        pass  # the watchdog closed the connection
    finally:
        stop.set()
        connection.close()
    args.overruns = overruns
    return clock.result()


CONTESTANTS = {"aionlmmap": aionlmmap_queue, "netfilterqueue": netfilterqueue_queue, "fnfqueue": fnfqueue_queue}


def main() -> None:
    import resource

    # A consumer that leaks under overload must not take the machine down.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(CONTESTANTS))
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--prequeued", action="store_true", help="size the queue and receive buffer for a backlog of --count packets")
    parser.add_argument("--per-packet", action="store_true", help="aionlmmap: `async for packet in queue` instead of queue.batches()")
    args = parser.parse_args()
    args.overruns = 0
    count, elapsed = CONTESTANTS[args.name](args)
    emit(count=count, elapsed=elapsed, overruns=args.overruns)


if __name__ == "__main__":
    main()
