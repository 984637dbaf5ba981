"""One picture per judge version: agreement before and after, with 95% intervals, as an SVG.

Plain SVG text (no plotting library needed): it opens in any browser, and Dagster shows it
inline from markdown metadata as a data URI.
"""

import base64
from html import escape
from pathlib import Path

from judgeloop.judging.intervals import Estimate

COLORS = ["#8c8c8c", "#1f77b4", "#2ca02c", "#ff7f0e"]
METRIC_TITLES = {"kappa": "kappa (weighted)", "exact": "exact agreement"}


def agreement_svg(title: str, series: list[tuple[str, dict[str, Estimate]]], metrics=("kappa", "exact")) -> str:
    """Bars per metric, one per series (e.g. "v3 (before)", "v4 (after)", "SME vs SME"), with interval whiskers."""
    width, height, left, top, bottom = 560, 300, 50, 40, 60
    plot_h = height - top - bottom
    values = [e for _, est in series for m in metrics if (e := est.get(m)) is not None and e.value is not None]
    low = min([0.0] + [min(e.value, e.low if e.low is not None else e.value) for e in values])
    low = max(-1.0, low)
    span = 1.0 - low

    def y(v: float) -> float:
        return top + plot_h * (1.0 - (max(low, min(1.0, v)) - low) / span)

    group_w = (width - left - 20) / len(metrics)
    bar_w = min(40, (group_w - 20) / max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for tick in [t / 4 for t in range(int(low * 4), 5)]:
        parts.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for g, metric in enumerate(metrics):
        x0 = left + g * group_w + 10
        parts.append(f'<text x="{x0 + group_w / 2 - 10:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(METRIC_TITLES.get(metric, metric))}</text>')
        for s, (name, estimates) in enumerate(series):
            est = estimates.get(metric)
            if est is None or est.value is None:
                continue
            x = x0 + s * bar_w
            base, top_y = y(max(0.0, low)), y(est.value)
            parts.append(
                f'<rect x="{x:.1f}" y="{min(base, top_y):.1f}" width="{bar_w - 4:.1f}" height="{abs(base - top_y):.1f}" '
                f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(name)}: {escape(est.text())}</title></rect>'
            )
            if est.has_interval:
                cx = x + (bar_w - 4) / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(est.low):.1f}" y2="{y(est.high):.1f}" stroke="black"/>')
                for v in (est.low, est.high):
                    parts.append(f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="black"/>')
            parts.append(f'<text x="{x + (bar_w - 4) / 2:.1f}" y="{top_y - 4:.1f}" text-anchor="middle" font-size="9">{est.value:.2f}</text>')
    for s, (name, _) in enumerate(series):
        lx = left + s * 170
        parts.append(f'<rect x="{lx}" y="{height - 22}" width="10" height="10" fill="{COLORS[s % len(COLORS)]}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 13}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write(svg: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)
    return path


def markdown_image(svg: str, alt: str) -> str:
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


def history_svg(title: str, points: list[tuple[str, Estimate]], ceiling: Estimate | None, note: str = "") -> str:
    """Kappa of each promoted version (in promotion order) with interval whiskers, the experts'
    ceiling as a shaded band: the one picture to read first."""
    width, height, left, right, top, bottom = 640, 320, 50, 20, 40, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [e for _, e in points if e.value is not None]
    bounds = [v for e in values for v in (e.value, e.low, e.high) if v is not None]
    if ceiling is not None and ceiling.value is not None:
        bounds += [v for v in (ceiling.value, ceiling.low, ceiling.high) if v is not None]
    low = max(-1.0, min([0.0] + bounds))
    span = 1.0 - low

    def y(v: float) -> float:
        return top + plot_h * (1.0 - (max(low, min(1.0, v)) - low) / span)

    def x(i: int) -> float:
        return left + plot_w * (i + 0.5) / max(1, len(points))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for tick in [t / 4 for t in range(int(low * 4), 5)]:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    if ceiling is not None and ceiling.value is not None:
        band_low = ceiling.low if ceiling.low is not None else ceiling.value
        band_high = ceiling.high if ceiling.high is not None else ceiling.value
        parts.append(
            f'<rect x="{left}" y="{y(band_high):.1f}" width="{plot_w}" height="{max(1.0, y(band_low) - y(band_high)):.1f}" '
            f'fill="#ff7f0e" fill-opacity="0.18"><title>experts vs experts: {escape(ceiling.text())}</title></rect>'
        )
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(ceiling.value):.1f}" y2="{y(ceiling.value):.1f}" stroke="#ff7f0e" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{width - right - 4}" y="{y(ceiling.value) - 4:.1f}" text-anchor="end" fill="#b35900">experts vs experts {ceiling.value:.2f}</text>')
    previous = None
    for i, (name, est) in enumerate(points):
        cx = x(i)
        parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(name)}</text>')
        if est.value is None:
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="#999">not measured</text>')
            previous = None
            continue
        if est.has_interval:
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(est.low):.1f}" y2="{y(est.high):.1f}" stroke="#1f77b4"/>')
            for v in (est.low, est.high):
                parts.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#1f77b4"/>')
        if previous is not None:
            parts.append(f'<line x1="{previous[0]:.1f}" x2="{cx:.1f}" y1="{previous[1]:.1f}" y2="{y(est.value):.1f}" stroke="#1f77b4" stroke-opacity="0.5"/>')
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(est.value):.1f}" r="4" fill="#1f77b4"><title>{escape(name)}: kappa {escape(est.text())}</title></circle>')
        parts.append(f'<text x="{cx + 7:.1f}" y="{y(est.value) - 6:.1f}" font-size="10">{est.value:.2f}</text>')
        previous = (cx, y(est.value))
    parts.append(f'<text x="{left}" y="{height - 30}" fill="#555">kappa with 95% intervals; shaded: the experts\' agreement with each other (95% interval)</text>')
    if note:
        parts.append(f'<text x="{left}" y="{height - 14}" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
