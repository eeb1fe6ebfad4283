"""Small inline SVG charts for the admin: no JavaScript, no external library, escaped labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def line_chart(
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    x_label: str,
    width: int = 560,
    height: int = 260,
    x_labels: Sequence[str] | None = None,
    marks: Sequence[tuple[int, str]] = (),
) -> SafeString:
    """One line per series over x = 1..n (e.g. loss and validation loss per epoch).

    ``x_labels`` names the points (default 1..n); ``marks`` draws a dashed vertical line
    with a label at point ``i`` (0-based), e.g. where a training stage starts.
    """
    values = _finite([v for line in series.values() for v in line])
    if not values:
        return format_html("<p>{}: no data.</p>", title)
    # The legend has its own row under the title, so it never covers a line.
    left, right, top, bottom = 56, 16, 48, 36
    n = max(len(line) for line in series.values())
    labels = list(x_labels) if x_labels is not None else [str(i + 1) for i in range(n)]
    low, high = min(values), max(values)
    if high == low:
        high = low + 1.0

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" style="font:12px sans-serif;background:#fff">',
        f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{y(high) + 4:.1f}" text-anchor="end">{high:.3g}</text>',
        f'<text x="{left - 6}" y="{y(low) + 4:.1f}" text-anchor="end">{low:.3g}</text>',
        f'<text x="{(width + left) / 2:.0f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>',
    ]
    step = max(1, -(-n // 16))  # at most ~16 tick labels
    for i in range(0, n, step):
        label = labels[i] if i < len(labels) else str(i + 1)
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 14}" text-anchor="middle">{escape(label)}</text>'
        )
    for i, label in marks:
        parts.append(
            f'<line x1="{x(i):.1f}" y1="{top}" x2="{x(i):.1f}" y2="{height - bottom}" stroke="#666" '
            'stroke-dasharray="4 3"/>'
            f'<text x="{x(i) + 3:.1f}" y="{top + 10}" fill="#444">{escape(label)}</text>'
        )
    for line, colour in zip(series.values(), PALETTE, strict=False):
        points = " ".join(
            f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line) if v is not None and math.isfinite(v)
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        for i, v in enumerate(line):
            if v is not None and math.isfinite(v):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
    legend_x = left
    for name, colour in zip(series, PALETTE, strict=False):
        parts.append(f'<rect x="{legend_x}" y="{top - 20}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{top - 11}">{escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every label above is escaped)


def bar_chart(
    groups: Mapping[str, Mapping[str, float | None]], *, title: str, highlight: str = "", width: int = 640
) -> SafeString:
    """Horizontal bars: for each group (a metric), one bar per model; ``highlight`` in colour."""
    if not groups:
        return format_html("<p>{}: no data.</p>", title)
    label_width, bar_height, gap = 150, 14, 10
    rows = sum(len(models) for models in groups.values()) + len(groups)
    height = 28 + rows * (bar_height + 2) + len(groups) * gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" style="font:12px sans-serif;background:#fff">',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    y = 28
    for group, models in groups.items():
        parts.append(f'<text x="0" y="{y + 11}" font-weight="bold">{escape(group)}</text>')
        y += bar_height + 2
        top = max(_finite(list(models.values())) or [1.0]) or 1.0
        for name, value in sorted(models.items(), key=lambda item: -(item[1] or 0)):
            length = 0 if value is None else (width - label_width - 70) * max(value, 0) / top
            colour = PALETTE[0] if name == highlight else "#9ca3af"
            parts.append(f'<text x="12" y="{y + 11}">{escape(name)}</text>')
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar_height}" fill="{colour}"/>'
            )
            shown = "-" if value is None else f"{value:.4f}"
            parts.append(f'<text x="{label_width + length + 4:.1f}" y="{y + 11}">{shown}</text>')
            y += bar_height + 2
        y += gap
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every label above is escaped)
