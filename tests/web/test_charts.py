"""Placing the overview's trend lines: values scaled to the chart, lines broken where there is no value."""

from __future__ import annotations

from casework.web.charts import HEIGHT, LEFT, TOP, WIDTH, line_chart, percent


def test_a_line_breaks_where_there_is_no_value_and_values_scale_to_the_top() -> None:
    chart = line_chart(
        "ambiguity",
        "Ambiguity",
        ["d1", "d2", "d3", "d4"],
        {"a": [0.5, None, 1.0, 0.0]},
        show=percent,
        top=1.0,
    )
    (series,) = chart.series
    assert [p.label for p in series.points] == ["d1 · a: 50.0%", "d3 · a: 100.0%", "d4 · a: 0.0%"]
    assert len(series.lines) == 2  # d1 alone, then d3 to d4
    first, top, bottom = series.points
    assert (first.x, first.y) == (LEFT, TOP + (HEIGHT - TOP) / 2)
    assert (top.y, bottom.y) == (TOP, HEIGHT)
    assert bottom.x == WIDTH - 8
    assert chart.top_label == "100.0%"


def test_a_chart_with_no_values_is_empty() -> None:
    chart = line_chart("t", "T", ["d1", "d2"], {"p50": [None, None]}, show=percent)
    assert chart.empty
    assert line_chart("t", "T", ["d1"], {"n": [0]}, show=str).series[0].points[0].y == HEIGHT
