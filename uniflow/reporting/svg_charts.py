"""Histogram, bar and line charts as inline SVG, drawn here rather than by a plotting library.

Each function returns one ``<svg>`` element with a title, labelled axes with ticks, and (for
histograms and bars) the count above every bar, so the chart reads on its own in an HTML page, a
Prefect artifact or a browser without scripts. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 580, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 48, 64
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
BAR_COLOUR = "#3b6ea8"
LINE_COLOURS = ("#3b6ea8", "#c8553d", "#2a9d5c", "#8a5ab5", "#d49a1a", "#4d4d4d")


def nice_step(span: float, target: int = 6) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target`` pieces."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power


def ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    step = nice_step(high - low, target)
    first = math.floor(low / step) * step
    values = []
    index = 0
    while (value := first + index * step) <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            values.append(round(value, 12))
        index += 1
    return values


def tick_label(value: float) -> str:
    """Short text for a tick or count: no trailing zeros, thousands separated, exponent when tiny or huge."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _text(x: float, y: float, content: str, size: int = 13, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{escape(content)}</text>")


def _frame(title: str, x_label: str, y_label: str, y_ticks: Sequence[float], y_of) -> list[str]:
    """Title, axis labels, the y axis with its ticks and grid, and the x axis line."""
    plot_right, plot_bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    parts = [
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        _text(WIDTH / 2, 28, title, size=17, extra=' font-weight="bold"'),
        _text((LEFT + plot_right) / 2, HEIGHT - 16, x_label, size=14),
        _text(18, (TOP + plot_bottom) / 2, y_label, size=14,
              extra=f' transform="rotate(-90 18 {(TOP + plot_bottom) / 2:.1f})"'),
    ]
    for value in y_ticks:
        y = y_of(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{plot_right}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(_text(LEFT - 8, y + 4, tick_label(value), size=12, anchor="end"))
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{plot_bottom}" stroke="#333"/>')
    parts.append(f'<line x1="{LEFT}" y1="{plot_bottom}" x2="{plot_right}" y2="{plot_bottom}" stroke="#333"/>')
    return parts


def _svg(parts: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" role="img" aria-label="{escape(title)}">'
            + "".join(parts) + "</svg>")


def _count_axis(counts: Sequence[int]):
    """Tick values and the value -> y mapping of a count axis starting at 0."""
    top = max(max(counts, default=0), 1)
    y_ticks = [value for value in ticks(0, top, 5) if float(value).is_integer()] or [0.0, float(top)]
    y_max = max(y_ticks[-1], top)
    plot_height = HEIGHT - BOTTOM - TOP

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - plot_height * value / y_max

    return y_ticks, y_of


def _bars(lefts: Sequence[float], widths: Sequence[float], counts: Sequence[int], y_of) -> list[str]:
    parts = []
    for x, width, count in zip(lefts, widths, counts, strict=True):
        if count <= 0:
            continue
        y = y_of(count)
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(width, 1.0):.1f}" '
                     f'height="{HEIGHT - BOTTOM - y:.1f}" fill="{BAR_COLOUR}"/>')
        parts.append(_text(x + width / 2, y - 4, tick_label(count), size=11))
    return parts


def histogram_svg(edges: Sequence[float], counts: Sequence[int], *, title: str, x_label: str, y_label: str = "count") -> str:
    """Bars over numeric bins (``len(edges) == len(counts) + 1``), x ticks at round values."""
    if len(edges) != len(counts) + 1:
        raise ValueError(f"histogram: {len(edges)} edges for {len(counts)} counts")
    low, high = float(edges[0]), float(edges[-1])
    span = (high - low) or 1.0
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(value: float) -> float:
        return LEFT + plot_width * (value - low) / span

    y_ticks, y_of = _count_axis(counts)
    parts = _frame(title, x_label, y_label, y_ticks, y_of)
    lefts = [x_of(edge) + 1 for edge in edges[:-1]]
    widths = [x_of(right) - x_of(left) - 2 for left, right in zip(edges[:-1], edges[1:], strict=True)]
    parts += _bars(lefts, widths, counts, y_of)
    for value in ticks(low, high, 7):
        x = x_of(value)
        parts.append(f'<line x1="{x:.1f}" y1="{HEIGHT - BOTTOM}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 5}" stroke="#333"/>')
        parts.append(_text(x, HEIGHT - BOTTOM + 20, tick_label(value), size=12))
    return _svg(parts, title)


def bar_chart_svg(labels: Sequence[str], counts: Sequence[int], *, title: str, x_label: str, y_label: str = "count") -> str:
    """One bar per category, its label under it."""
    if len(labels) != len(counts):
        raise ValueError(f"bar chart: {len(labels)} labels for {len(counts)} counts")
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    y_ticks, y_of = _count_axis(counts)
    parts = _frame(title, x_label, y_label, y_ticks, y_of)
    lefts = [LEFT + index * slot + slot * 0.15 for index in range(len(labels))]
    parts += _bars(lefts, [slot * 0.7] * len(labels), counts, y_of)
    for index, label in enumerate(labels):
        parts.append(_text(LEFT + (index + 0.5) * slot, HEIGHT - BOTTOM + 20, label, size=12))
    return _svg(parts, title)


def line_chart_svg(
    series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, x_label: str, y_label: str, log_y: bool = False
) -> str:
    """One polyline per named series of (x, y) points (e.g. loss per step), with a legend.

    ``log_y`` draws the y axis in powers of ten (losses spanning decades); it needs positive values.
    """
    points = [point for values in series.values() for point in values]
    if log_y and any(y <= 0 for _, y in points):
        raise ValueError("line chart: log_y needs positive values")
    xs = [x for x, _ in points] or [0.0, 1.0]
    ys = [math.log10(y) if log_y else y for _, y in points] or [0.0, 1.0]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    if log_y:  # whole decades, with 2 and 5 between them when there are few
        first, last = math.floor(y_low), math.ceil(y_high)
        steps = (1, 2, 5) if last - first <= 2 else (1,)
        y_ticks = [decade + math.log10(step) for decade in range(first, last + 1) for step in steps
                   if decade + math.log10(step) <= last]
        y_low, y_high = first, last
    else:
        y_ticks = ticks(y_low, y_high, 5)
        y_low, y_high = min(y_low, y_ticks[0]), max(y_high, y_ticks[-1])
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP

    def x_of(value: float) -> float:
        return LEFT + plot_width * (value - x_low) / (x_high - x_low)

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - plot_height * (value - y_low) / (y_high - y_low)

    parts = _frame(title, x_label, y_label, [], y_of)
    for value in y_ticks:  # drawn here: a log axis labels 10^tick, not the tick
        y = y_of(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(_text(LEFT - 8, y + 4, tick_label(round(10.0**value, 12) if log_y else value), size=12, anchor="end"))
    for value in ticks(x_low, x_high, 7):
        x = x_of(value)
        parts.append(f'<line x1="{x:.1f}" y1="{HEIGHT - BOTTOM}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 5}" stroke="#333"/>')
        parts.append(_text(x, HEIGHT - BOTTOM + 20, tick_label(value), size=12))
    for index, (name, values) in enumerate(series.items()):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        coords = " ".join(f"{x_of(x):.1f},{y_of(math.log10(y) if log_y else y):.1f}" for x, y in values)
        if len(values) == 1:
            x, y = values[0]
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(math.log10(y) if log_y else y):.1f}" r="3" fill="{colour}"/>')
        elif values:
            parts.append(f'<polyline class="series" points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend_y = TOP + 6 + 18 * index
        parts.append(f'<line x1="{WIDTH - RIGHT - 150}" y1="{legend_y}" x2="{WIDTH - RIGHT - 126}" y2="{legend_y}" '
                     f'stroke="{colour}" stroke-width="3"/>')
        parts.append(_text(WIDTH - RIGHT - 120, legend_y + 4, name, size=12, anchor="start"))
    return _svg(parts, title)
