"""Benchmark results: one record per figure, JSON output and a fixed-width table."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Goal comparators: ``<=`` (value must not exceed the goal), ``>=``, or ``info`` (reported, no goal).
COMPARATORS = ("<=", ">=", "info")


@dataclass
class Result:
    """One benchmark figure beside its goal.

    Attributes:
        name: what is measured.
        value: the measured number (None when it could not be measured).
        unit: unit of ``value``.
        goal: the goal as text, e.g. ``"<= 0.03"``; empty for figures reported without a goal.
        met: whether the goal is met (True for figures without a goal that were measured).
        note: how it was measured and what limits it.
    """

    name: str
    value: float | None
    unit: str
    goal: str
    met: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def judge(value: float | None, comparator: str, target: float | None) -> bool:
    """Whether ``value`` meets ``comparator target``; an unmeasured value never meets a goal.

    Args:
        value: the measured number, or None.
        comparator: one of :data:`COMPARATORS`.
        target: the goal's number (ignored for ``info``).

    Returns:
        True when the goal is met.
    """
    if comparator not in COMPARATORS:
        raise ValueError(f"unknown comparator {comparator!r}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if comparator == "info" or target is None:
        return True
    return value <= target if comparator == "<=" else value >= target


def figure(
    name: str,
    value: float | None,
    unit: str,
    comparator: str = "info",
    target: float | None = None,
    note: str = "",
) -> Result:
    """Build a :class:`Result`, judging ``value`` against ``comparator target``."""
    goal = "" if comparator == "info" else f"{comparator} {_fmt(target)}"
    return Result(name, value, unit, goal, judge(value, comparator, target), note)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.3g}"


def format_table(results: list[Result], width: int = 60) -> str:
    """The results as a fixed-width table: figure, value, unit, goal, met.

    Args:
        results: the figures.
        width: width of the name column (longer names are cut with an ellipsis).

    Returns:
        The table, one line per figure, with a header and a count of goals met.
    """
    header = f"{'figure':<{width}} {'value':>12} {'unit':<10} {'goal':>10}  met"
    lines = [header, "-" * len(header)]
    for r in results:
        name = r.name if len(r.name) <= width else r.name[: width - 1] + "…"
        met = ("yes" if r.met else "NO") if r.goal else "-"
        lines.append(f"{name:<{width}} {_fmt(r.value):>12} {r.unit:<10} {r.goal:>10}  {met}")
    goals = [r for r in results if r.goal]
    lines.append("-" * len(header))
    lines.append(f"goals met: {sum(r.met for r in goals)} of {len(goals)}")
    return "\n".join(lines)


def write_results(results: list[Result], path: Path) -> None:
    """Write ``results`` as a JSON list to ``path``."""
    path.write_text(json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")
