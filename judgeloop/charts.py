"""One picture per judge version: agreement before and after, with 95% intervals, as an SVG.

Plain SVG text (no plotting library needed): it opens in any browser, and Dagster shows it
inline from markdown metadata as a data URI.
"""

import base64
from html import escape
from pathlib import Path

from judgeloop.intervals import Estimate

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
