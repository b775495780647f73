"""Line charts for the overview, drawn as inline SVG by the template: this module only places the points.

A series is a list of values, one per bucket, ``None`` where there is nothing to show (no verdicts that day):
the line breaks there rather than pretending the value was zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH = 640
HEIGHT = 160
LEFT = 48  # room for the top tick's label
RIGHT = 8
TOP = 8
SERIES_CLASSES = 6  # app.css colours series-0 .. series-5


@dataclass
class Point:
    x: float
    y: float
    label: str  # the hover text: "2026-03-27 · hallucination: 12.5%"


@dataclass
class Series:
    name: str
    css: str
    lines: list[str]  # SVG polyline "points" attributes, one per unbroken run of values
    points: list[Point]


@dataclass
class Chart:
    name: str
    title: str
    top_label: str
    first_label: str
    last_label: str
    series: list[Series] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def count(value: float) -> str:
    return f"{value:,.0f}"


def hours(value: float) -> str:
    return f"{value / 3600:.1f} h"


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    show: Callable[[float], str],
    top: float | None = None,
) -> Chart:
    """Place each series on a chart whose y axis runs from 0 to ``top`` (default: the largest value)."""
    values = [v for found in series.values() for v in found if v is not None]
    top = top if top is not None else max(values, default=0.0)
    top = top or 1.0
    step = (WIDTH - LEFT - RIGHT) / max(len(labels) - 1, 1)
    chart = Chart(
        name=name,
        title=title,
        top_label=show(top),
        first_label=labels[0] if labels else "",
        last_label=labels[-1] if labels else "",
    )
    for index, (series_name, found) in enumerate(series.items()):
        lines: list[str] = []
        run: list[str] = []
        points = []
        for position, (label, value) in enumerate(zip(labels, found, strict=True)):
            if value is None:
                if run:
                    lines.append(" ".join(run))
                run = []
                continue
            x = round(LEFT + position * step, 1)
            y = round(TOP + (HEIGHT - TOP) * (1 - min(value / top, 1.0)), 1)
            run.append(f"{x},{y}")
            points.append(Point(x, y, f"{label} · {series_name}: {show(value)}"))
        if run:
            lines.append(" ".join(run))
        chart.series.append(Series(series_name, f"series-{index % SERIES_CLASSES}", lines, points))
    return chart


def overview_charts(trends: dict[str, Any]) -> list[Chart]:
    """The overview's trend charts, from ``GET /api/v1/projects/{id}/trends``'s document (by day)."""
    buckets = trends["buckets"]
    labels = [str(b["start"]) for b in buckets]
    evaluators = sorted({name for b in buckets for name in b["by_evaluator"]})
    return [
        line_chart(
            "ambiguity",
            "Ambiguity rate by evaluator (share of verdicts sent to people)",
            labels,
            {name: [b["by_evaluator"][name]["ambiguity_rate"] for b in buckets] for name in evaluators},
            show=percent,
            top=1.0,
        ),
        line_chart(
            "reviews",
            "Reviews created, and resolved by people and by memory",
            labels,
            {
                "created": [b["reviews_created"] for b in buckets],
                "resolved by people": [b["resolved_by_people"] for b in buckets],
                "resolved by memory": [b["resolved_by_memory"] for b in buckets],
            },
            show=count,
        ),
        line_chart(
            "decision-time",
            "Time to decision (p50, p90, p99)",
            labels,
            {
                "p50": [b["time_to_decision_p50_seconds"] for b in buckets],
                "p90": [b["time_to_decision_p90_seconds"] for b in buckets],
                "p99": [b["time_to_decision_p99_seconds"] for b in buckets],
            },
            show=hours,
        ),
        line_chart(
            "breach-rate",
            "SLA breach rate (share of decisions made after their due time)",
            labels,
            {"breach rate": [b["breach_rate"] for b in buckets]},
            show=percent,
            top=1.0,
        ),
        line_chart(
            "agreement",
            "Agreement on people's decisions (the judge with people; reviewers with each other)",
            labels,
            {
                "judge vs people": [b["judge_human_agreement"] for b in buckets],
                "reviewer vs reviewer": [b["inter_reviewer_agreement"] for b in buckets],
            },
            show=percent,
            top=1.0,
        ),
    ]
