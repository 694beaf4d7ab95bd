"""The benchmark scenarios. Each module has ``TITLE``, ``DEFAULT_N`` and
``run(options, reporter)``; ``SCENARIOS`` maps the command-line names to them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..runner import Contestant

__all__ = ["Options", "SCENARIOS", "load"]


@attrs.frozen
class Options:
    n: int | None  #: scenario size (None: the scenario's default)
    repeat: int
    only: tuple[str, ...] = ()  #: contestant name filters (substrings); empty = all

    def size(self, default: int) -> int:
        return self.n if self.n is not None else default

    def wants(self, name: str) -> bool:
        return not self.only or any(part in name for part in self.only)

    def measure(self, scenario: str, unit: str, contestants: Sequence[Contestant], n: int, progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
        """Run the contestants these options ask for (``--only``), ``repeat``
        times each, and tag every summary with the scenario size ``n``."""
        from ..runner import measure_all

        chosen = [c for c in contestants if self.wants(c.name)]
        summaries = measure_all(scenario, unit, chosen, self.repeat, progress=progress)
        for summary in summaries.values():
            summary["n"] = n
        return summaries


#: command-line name -> module (imported lazily so one broken scenario does
#: not stop the others)
SCENARIOS = {
    "route-dump": "route_dump",
    "route-dump-gateway": "route_dump_gateway",
    "route-dump-mixed": "route_dump_mixed",
    "storm": "storm",
    "nfqueue": "nfqueue",
    "tx-batch": "tx_batch",
    "geometry": "geometry",
    "frames": "frames",
}


def load(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"benchmarks.scenarios.{SCENARIOS[name]}")
