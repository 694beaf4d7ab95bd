"""Scenario 1 on the mixed table shape (see route_dump.SHAPES)."""

from __future__ import annotations

from ..runner import Reporter
from . import Options
from .route_dump import DEFAULT_N, SHAPES, TITLE, run_shape

__all__ = ["DEFAULT_N", "TITLE", "run"]
TITLE = f"{TITLE} ({SHAPES['mixed'][0]})"


def run(options: Options, reporter: Reporter) -> None:
    run_shape("mixed", options, reporter)
