"""The overview's agreement chart: the trend's series laid out as inline SVG (no script, no CDN).

Three lines over the same weeks, each with its 95% interval as a band: reviewers' Krippendorff's alpha, and the
judge's Cohen's kappa against people, on its first verdict and after re-evaluation with memory. Every point has
a title with its value, interval, number of items and (for the judge) the controls memory had by then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 36, 12, 10, 30


@dataclass
class ChartPoint:
    x: float
    y: float
    title: str


@dataclass
class Series:
    key: str
    name: str
    points: list[ChartPoint] = field(default_factory=list)
    band: str = ""  # the polygon of the interval, where points have one

    @property
    def line(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class AgreementChart:
    width: int
    height: int
    series: list[Series]
    ticks: list[tuple[float, str]]  # y, label
    first: str
    last: str
    rows: list[dict[str, Any]]
    overlap: bool

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def _interval_text(estimate: dict[str, Any]) -> str:
    interval = estimate.get("interval")
    return f" (95% {interval[0]:.2f} to {interval[1]:.2f})" if interval else ""


def agreement_chart(trend: dict[str, Any]) -> AgreementChart:
    """Chart geometry from ``GET /api/v1/projects/{id}/agreement/trend``'s answer."""
    raw: dict[str, list[tuple[str, dict[str, Any], str]]] = {"alpha": [], "first": [], "memory": []}
    level = trend["level"]
    for point in trend["inter_reviewer"]:
        estimate = point["krippendorff_alpha"]
        if estimate["value"] is not None:
            text = f"{point['start']}: reviewers' alpha ({level}) {estimate['value']:.2f}{_interval_text(estimate)}, n = {estimate['items']} reviews"
            raw["alpha"].append((point["start"], estimate, text))
    for point in trend["judge_vs_human_all"]:
        for key, part, label in (
            ("first", "first", "first verdict"),
            ("memory", "with_memory", "with memory"),
        ):
            estimate = point[part]["cohen_kappa"]
            if estimate["value"] is not None:
                text = (
                    f"{point['start']}: judge's kappa, {label}, {estimate['value']:.2f}{_interval_text(estimate)}, "
                    f"n = {estimate['items']}, {point['controls']} controls by then"
                )
                raw[key].append((point["start"], estimate, text))
    starts = sorted({start for values in raw.values() for start, _, _ in values})
    lows = [
        min(e["value"], *(e["interval"] or [e["value"]])) for values in raw.values() for _, e, _ in values
    ]
    bottom = min([0.0, *lows])
    bottom = -1.0 if bottom < -0.5 else (-0.5 if bottom < 0 else 0.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(start: str) -> float:
        if len(starts) == 1:
            return LEFT + plot_w / 2
        return LEFT + plot_w * starts.index(start) / (len(starts) - 1)

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - (max(min(value, 1.0), bottom) - bottom) / (1 - bottom))

    names = {
        "alpha": "Reviewers: Krippendorff's alpha",
        "first": "Judge vs people: kappa, first verdict",
        "memory": "Judge vs people: kappa, with memory",
    }
    series = []
    for key, values in raw.items():
        made = Series(key=key, name=names[key])
        for start, estimate, text in values:
            made.points.append(ChartPoint(x_of(start), y_of(estimate["value"]), text))
        banded = [(x_of(s), e["interval"]) for s, e, _ in values if e["interval"]]
        if len(banded) >= 2:
            upper = [f"{x:.1f},{y_of(i[1]):.1f}" for x, i in banded]
            lower = [f"{x:.1f},{y_of(i[0]):.1f}" for x, i in reversed(banded)]
            made.band = " ".join(upper + lower)
        series.append(made)
    ticks = [(y_of(v), f"{v:g}") for v in (1.0, 0.5, 0.0, -0.5, -1.0) if v >= bottom]
    by_start: dict[str, dict[str, Any]] = {start: {"start": start} for start in starts}
    for key, values in raw.items():
        for start, estimate, _ in values:
            by_start[start][key] = estimate
    for point in trend["judge_vs_human_all"]:
        if point["start"] in by_start:
            by_start[point["start"]]["controls"] = point["controls"]
    return AgreementChart(
        width=WIDTH,
        height=HEIGHT,
        series=series,
        ticks=ticks,
        first=starts[0] if starts else "",
        last=starts[-1] if starts else "",
        rows=[by_start[start] for start in starts],
        overlap=bool(trend["inter_reviewer"]),
    )
