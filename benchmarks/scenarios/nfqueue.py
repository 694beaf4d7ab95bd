"""Scenario 3, nfqueue: a C sender floods 64-byte UDP payloads from one
namespace to another, where an iptables NFQUEUE rule (queue 0, no bypass)
hands every packet to the consumer, which accepts it.

Contestants: the C libnetfilter_queue consumer (benchmarks/c/
nfqueue_consumer.c, one verdict per packet), NetfilterQueue, fnfqueue and
aionlmmap (``queue.batches()``, one ``accept()`` per packet, batched
verdicts on the TX ring; ``-pure``: on the pure-Python core,
AIONLMMAP_NO_EXTENSIONS=1; ``-per-packet``: ``async for packet in queue``),
each in two modes under the
same protocol (see measure_queue): racing the flood with its library's
default queue settings, and "-prequeued", timed on a backlog of the whole
flood queued before it starts. Reported: verdicts/s from the consumer's
first to last packet, packets sent, verdicts given, and the kernel's
queue_dropped/user_dropped counters (queue full / socket full).
"""

from __future__ import annotations

from typing import Any

from .. import cbuild
from ..netns import BenchmarkSetupError, Namespace, namespace_pair
from ..runner import (
    Child,
    Contestant,
    ContestantFailed,
    Reporter,
    Sample,
    Skipped,
    child_env,
    parse_result,
    python_contestant_argv,
    ratio_target,
    run_child,
)
from . import Options

TITLE = "Scenario 3: nfqueue verdicts"
DEFAULT_N = 200_000
UNIT = "verdicts/s"
PORT = 9999
PAYLOAD = 64
RECEIVER_ADDRESS = "10.98.0.2"


def install_queue_rule(receiver: Namespace) -> str:
    """The NFQUEUE rule, with whichever tool works in this kernel/userland."""
    attempts = [
        ["iptables", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-j", "NFQUEUE", "--queue-num", "0"],
        ["iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", str(PORT), "-j", "NFQUEUE", "--queue-num", "0"],
    ]
    errors = []
    for command in attempts:
        try:
            receiver.run(*command)
            return " ".join(command)
        except (BenchmarkSetupError, FileNotFoundError) as error:
            errors.append(str(error))
    ruleset = f"table inet bench {{ chain input {{ type filter hook input priority 0; udp dport {PORT} queue num 0; }} }}"
    try:
        receiver.run("nft", ruleset)
        return "nft " + ruleset
    except (BenchmarkSetupError, FileNotFoundError) as error:
        errors.append(str(error))
    raise BenchmarkSetupError("cannot install an NFQUEUE rule: " + " | ".join(errors))


def queue_counters(receiver: Namespace) -> dict[str, int]:
    """queue_dropped / user_dropped of queue 0 from /proc/net/netfilter/nfnetlink_queue
    (fields: queue portid total copy_mode copy_range queue_dropped user_dropped id_sequence 1)."""
    try:
        text = receiver.run("cat", "/proc/net/netfilter/nfnetlink_queue").stdout
    except BenchmarkSetupError:
        return {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0] == "0":
            return {"queue_dropped": int(fields[5]), "user_dropped": int(fields[6])}
    return {}


#: A backlog every consumer can hold: the kernel charges each queued packet
#: about 4 KiB of receive buffer, so a 256 MiB buffer holds about 65,000.
PREQUEUED_MAX = 60_000


def measure_queue(n: int, consumer_argv: Any, name: str, *, prequeued: bool, core: str | None = None, ready_timeout: float = 30) -> Sample:
    """One flood through one consumer.

    Every consumer binds, prints ``ready`` and waits for a line on stdin.
    Live: the line comes at once and the consumer races the flood (the
    default queue of 1024 packets drops what it cannot keep up with).
    Prequeued: the consumer asked for a queue and receive buffer that hold
    the whole flood, and the line comes after the flood, so it is timed on
    the backlog alone."""
    try:
        flood = cbuild.build("udp_flood")
    except cbuild.CompilerMissing as error:
        raise Skipped(f"the UDP flood sender needs a C compiler: {error}") from None
    with namespace_pair("nfq") as (sender, receiver):
        install_queue_rule(receiver)
        child = Child(consumer_argv(receiver), env=child_env(core), keep_stdin=True)
        try:
            if not child.wait_for_line("ready", timeout=ready_timeout):
                if child.proc.poll() is not None:
                    parse_result(child.finish(timeout=5), name)
                raise ContestantFailed(f"{name} did not print ready")
            if not prequeued:
                child.write_stdin("go\n")
            flood_result = run_child([*sender.exec_prefix(), str(flood), RECEIVER_ADDRESS, str(PORT), str(n), str(PAYLOAD)], timeout=120)
            # Drops happen at enqueue time, so they are final once the flood
            # is sent; the queue (and its counters) go when the consumer exits.
            counters = queue_counters(receiver)
            if prequeued:
                child.write_stdin("go\n")
        finally:
            result = child.finish(timeout=90)
        if flood_result.returncode != 0:
            raise ContestantFailed(f"the flood sender failed: {flood_result.stderr.strip()[-300:]}")
        sent = parse_result(flood_result, "udp_flood")["sent"]
        data = parse_result(result, name)
    count = int(data.get("count", data.get("packets", 0)))
    elapsed = float(data.get("elapsed", data.get("seconds", 0.0)))
    if count < max(1, int(sent) // 100):
        # A rate over a handful of packets means nothing (fnfqueue raises
        # BufferOverflowException at the first ENOBUFS and stops).
        raise ContestantFailed(f"gave {count} verdicts for {sent} packets sent ({int(data.get('overruns', 0))} overruns): no rate to report")
    fields: dict[str, Any] = {"sent": int(sent), "verdicts": count, "overruns": int(data.get("overruns", 0)), "prequeued": prequeued, **counters}
    return Sample(count, elapsed or 1e-9, result.peak_rss_kib, None, fields)


def contestants(n: int) -> list[Contestant]:
    def c_argv(count: int, prequeued: bool) -> Any:
        def argv(receiver: Namespace) -> list[str]:
            try:
                binary = cbuild.build("nfqueue_consumer", ("netfilter_queue", "mnl"))
            except cbuild.CompilerMissing as error:
                raise Skipped(str(error)) from None
            return [*receiver.exec_prefix(), str(binary), "0", str(count), *(["prequeued"] if prequeued else [])]

        return argv

    def python_argv(module_name: str, count: int, prequeued: bool, loop: str = "asyncio", per_packet: bool = False) -> Any:
        extra = (["--prequeued"] if prequeued else []) + (["--per-packet"] if per_packet else [])
        return lambda receiver: python_contestant_argv(receiver.exec_prefix(), "nfqueue", module_name, "--count", str(count), "--loop", loop, *extra)

    backlog = min(n, PREQUEUED_MAX)
    items: list[tuple[str, Any, bool, int, str | None]] = []
    for prequeued, count, suffix in ((False, n, ""), (True, backlog, "-prequeued")):
        items += [
            ("c-libnetfilter_queue" + suffix, c_argv(count, prequeued), prequeued, count, None),
            ("netfilterqueue" + suffix, python_argv("netfilterqueue", count, prequeued), prequeued, count, None),
            ("aionlmmap" + suffix, python_argv("aionlmmap", count, prequeued), prequeued, count, "compiled"),
            ("aionlmmap-uvloop" + suffix, python_argv("aionlmmap", count, prequeued, "uvloop"), prequeued, count, "compiled"),
            ("aionlmmap-pure" + suffix, python_argv("aionlmmap", count, prequeued), prequeued, count, "pure"),
            ("aionlmmap-per-packet" + suffix, python_argv("aionlmmap", count, prequeued, per_packet=True), prequeued, count, "compiled"),
        ]
    # fnfqueue's reader thread overflows at once and cannot set a queue length.
    items.append(("fnfqueue", python_argv("fnfqueue", n, False), False, n, None))
    return [
        Contestant(
            name,
            (lambda build=build, name=name, prequeued=prequeued, count=count, core=core: measure_queue(count, build, name, prequeued=prequeued, core=core)),
            reference="aionlmmap-prequeued" if prequeued else "aionlmmap",
            note=f"{count} packets queued first, then consumed" if prequeued else "",
        )
        for name, build, prequeued, count, core in items
    ]


TARGETS = [
    ratio_target("nfqueue verdicts/s >= the per-packet C consumer (racing the flood)", "aionlmmap", "c-libnetfilter_queue", 1.0),
    ratio_target("nfqueue verdicts/s >= the per-packet C consumer (queued backlog)", "aionlmmap-prequeued", "c-libnetfilter_queue-prequeued", 1.0),
    ratio_target("nfqueue ahead of NetfilterQueue (racing the flood)", "aionlmmap", "netfilterqueue", 1.0),
    ratio_target("nfqueue ahead of NetfilterQueue (queued backlog)", "aionlmmap-prequeued", "netfilterqueue-prequeued", 1.0),
    ratio_target("nfqueue far ahead of fnfqueue (>= 2x)", "aionlmmap", "fnfqueue", 2.0),
    ratio_target("pure Python: nfqueue ahead of NetfilterQueue (queued backlog)", "aionlmmap-pure-prequeued", "netfilterqueue-prequeued", 1.0),
]


def run(options: Options, reporter: Reporter) -> None:
    n = options.size(DEFAULT_N)
    summaries = options.measure("nfqueue", UNIT, contestants(n), n, reporter.progress)
    reporter.scenario(f"{TITLE}, {n} packets of {PAYLOAD}-byte UDP payload", summaries, TARGETS, extra_columns=("sent", "verdicts", "queue_dropped", "user_dropped", "prequeued"))
