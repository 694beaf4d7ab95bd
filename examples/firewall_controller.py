"""An asyncio firewall controller: watch traffic with nflog, block noisy
sources with an nf_tables set, in batched atomic transactions.

    python3 examples/firewall_controller.py --netns fw --port 7000 --threshold 50 --window 5

What it sets up (one transaction), inside the namespace:

    table inet aionlmmap_fw {
        set blocklist { type ipv4_addr; flags timeout; timeout 5m; }
        chain input {
            type filter hook input priority -10; policy accept;
            ip saddr @blocklist counter drop
            udp dport PORT log group GROUP        # (tcp with --protocol tcp)
        }
    }

Then it reads the log group: every packet to PORT is counted per source
address over a sliding ``--window``; a source that passes ``--threshold``
packets is blocked. Blocks are collected and committed together every
``--batch-interval`` seconds (one transaction, one sendmsg, however many
addresses), so a flood of offenders costs a handful of commits. A status
line shows what is going on. Ctrl-C (or ``--duration``) removes the table
unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import signal
import sys
import time

from aionlmmap.families.netfilter import nflog, nftables
from aionlmmap.families.netfilter.nftables import Counter, DROP, Log, ip_saddr_in, tcp_dport, udp_dport

TABLE = "aionlmmap_fw"


class Controller:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.nft: nftables.Nftables | None = None
        self.blocklist: nftables.Set | None = None
        self.hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.blocked: set[str] = set()
        self.to_block: set[str] = set()
        self.entries = 0
        self.transactions = 0
        self.started = time.monotonic()

    async def install(self, nft: nftables.Nftables) -> None:
        args = self.args
        port_match = tcp_dport(args.port) if args.protocol == "tcp" else udp_dport(args.port)
        async with nft.transaction() as tx:
            tx.add_table("inet", TABLE)
            tx.add_chain("inet", TABLE, "input", hook="input", priority=-10, policy="accept")
            self.blocklist = tx.add_set("inet", TABLE, "blocklist", key_type="ipv4_addr", flags={"timeout"}, timeout=args.block_timeout)
            tx.add_rule("inet", TABLE, "input", [*ip_saddr_in("blocklist"), Counter(), DROP], comment="blocked by aionlmmap")
            tx.add_rule("inet", TABLE, "input", [*port_match, Log(group=args.group)], comment="watched by aionlmmap")
        self.transactions += 1

    async def remove(self, nft: nftables.Nftables) -> None:
        async with nft.transaction(check_generation=False) as tx:
            tx.delete_table("inet", TABLE)

    async def watch(self, log: nflog.Log) -> None:
        window, threshold = self.args.window, self.args.threshold
        async for entry in log:
            self.entries += 1
            payload = entry.payload
            if entry.hw_protocol != 0x0800 or len(payload) < 20:
                continue  # IPv4 only in this example
            source = str(ipaddress.IPv4Address(bytes(payload[12:16])))
            if source in self.blocked or source in self.to_block:
                continue
            now = time.monotonic()
            hits = self.hits[source]
            hits.append(now)
            while hits and hits[0] < now - window:
                hits.popleft()
            if len(hits) >= threshold:
                self.to_block.add(source)
                del self.hits[source]

    async def commit_blocks(self, nft: nftables.Nftables) -> None:
        while True:
            await asyncio.sleep(self.args.batch_interval)
            if not self.to_block:
                continue
            batch = sorted(self.to_block)
            assert self.blocklist is not None
            # No generation check: adding elements is safe whatever else changed.
            async with nft.transaction(check_generation=False) as tx:
                tx.add_elements(self.blocklist, batch)
            # Only now out of to_block: while the transaction was in flight,
            # log entries of these sources kept coming and must not count
            # toward a second block (and a failed commit is retried).
            self.blocked.update(batch)
            self.to_block.difference_update(batch)
            self.transactions += 1

    def status(self) -> dict[str, object]:
        return {"uptime": round(time.monotonic() - self.started, 1), "log_entries": self.entries, "sources_watched": len(self.hits),
                "blocked": sorted(self.blocked), "transactions": self.transactions}

    async def report(self) -> None:
        while True:
            await asyncio.sleep(self.args.status_interval)
            self.print_status()

    def print_status(self, final: bool = False) -> None:
        status = self.status()
        if self.args.json:
            print(json.dumps({"final": final, **status}), flush=True)
        else:
            line = (f"\r[{status['uptime']:>7}s] log entries {status['log_entries']:>8}  watching {status['sources_watched']:>5} "
                    f"sources  blocked {len(self.blocked):>5}  transactions {status['transactions']:>4}")
            print(line, end="\n" if final else "", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> int:
    controller = Controller(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with nftables.open(netns=args.netns) as nft:
        await controller.install(nft)
        try:
            async with nflog.open(args.group, netns=args.netns, copy_range=64) as log:
                tasks = [asyncio.create_task(coro) for coro in (controller.watch(log), controller.commit_blocks(nft), controller.report())]
                waiter = asyncio.create_task(stop.wait())
                await asyncio.wait([waiter, *tasks], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
                for task in (*tasks, waiter):
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task  # re-raises a crash of the watcher or the committer
            controller.print_status(final=True)
        finally:
            if not args.keep:
                await controller.remove(nft)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--netns", help="network namespace to protect (default: this one)")
    parser.add_argument("--port", type=int, required=True, help="destination port to watch")
    parser.add_argument("--protocol", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--group", type=int, default=42, help="nflog group to use (default 42)")
    parser.add_argument("--threshold", type=int, default=100, help="packets per window that get a source blocked")
    parser.add_argument("--window", type=float, default=10.0, help="sliding window in seconds")
    parser.add_argument("--block-timeout", type=float, default=300.0, help="seconds a source stays blocked")
    parser.add_argument("--batch-interval", type=float, default=0.2, help="seconds between block commits")
    parser.add_argument("--status-interval", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--keep", action="store_true", help="leave the table in place on exit")
    parser.add_argument("--json", action="store_true", help="status as JSON lines on stdout")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
