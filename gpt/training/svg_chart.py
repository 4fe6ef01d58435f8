"""Line charts as SVG files, with nothing but the standard library: the loss curves of a run.

Why SVG and not PNG through matplotlib: the main install stays NumPy-only and every run gets its
plot; a browser (or any image viewer that reads SVG, or an editor) opens it; the text in it is real
text; and the whole writer fits on a few screens that a reader can follow.

    chart = Chart("tokens seen", "cross-entropy loss")
    chart.add("train (each step)", xs, ys, thin=True)
    chart.add("validation", xs2, ys2, points=True)
    write_svg("loss.svg", [chart], title="runs/tiny")

A series with many points is thinned to at most ``MAX_POINTS`` (means over equal runs of steps);
NaN and infinite values leave a gap.
"""
import html
import math
from dataclasses import dataclass, field

from tinytensor.atomic import write_text

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
MAX_POINTS = 1000
W, H = 560, 416                              # one chart's size in pixels
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 84    # margins around its plotting area (the legend goes below it)
LEGEND_ROW = 18                              # the legend: rows of entries under the axis label, never over a curve


@dataclass
class Series:
    label: str
    xs: list
    ys: list
    thin: bool = False                       # a light, thin line (noisy per-step values)
    points: bool = False                     # a marker on every point (evaluations)
    color: str = None


@dataclass
class Chart:
    xlabel: str
    ylabel: str
    series: list = field(default_factory=list)
    ylim: tuple = None                       # (low, high); None: from the data

    def add(self, label, xs, ys, **kw):
        """Add a series (see Series); returns the chart."""
        self.series.append(Series(label, list(xs), list(ys), **kw))
        return self


def nice_ticks(lo, hi, n=5):
    """About ``n`` round values (steps of 1, 2, 2.5 or 5 times a power of ten) from the last one at or
    below ``lo`` to the first one at or above ``hi``."""
    if not hi > lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def short_number(v):
    """1500000 -> 1.5M, 20000 -> 20k, 0.25 -> 0.25."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.4g}{suffix}"
    return f"{v:.4g}"


def thinned(xs, ys, most=MAX_POINTS):
    """At most ``most`` points: the means of equal runs of consecutive points (non-finite ones dropped)."""
    pts = [(x, y) for x, y in zip(xs, ys) if _finite(x) and _finite(y)]
    if len(pts) <= most:
        return pts
    size = math.ceil(len(pts) / most)
    runs = [pts[i:i + size] for i in range(0, len(pts), size)]
    return [(sum(p[0] for p in r) / len(r), sum(p[1] for p in r) / len(r)) for r in runs]


def _finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _segments(xs, ys):
    """Runs of consecutive finite points (a non-finite value breaks the line)."""
    run = []
    for x, y in zip(xs, ys):
        if _finite(x) and _finite(y):
            run.append((x, y))
        elif run:
            yield run
            run = []
    if run:
        yield run


def _chart_svg(chart, ox):
    """The SVG elements of one chart whose left edge is at ``ox``."""
    drawn = [(s, thinned(s.xs, s.ys) if len(s.xs) > MAX_POINTS else None) for s in chart.series]
    xs = [x for s, t in drawn for x, _ in (t if t is not None else zip(s.xs, s.ys)) if _finite(x)]
    ys = [y for s, t in drawn for _, y in (t if t is not None else zip(s.xs, s.ys)) if _finite(y)]
    x_ticks = nice_ticks(min(xs, default=0), max(xs, default=1))
    y_lo, y_hi = chart.ylim or (min(ys, default=0), max(ys, default=1))
    y_ticks = nice_ticks(y_lo, y_hi)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return ox + LEFT + (x - x0) / ((x1 - x0) or 1) * pw

    def py(y):
        return TOP + ph - (min(max(y, y0), y1) - y0) / ((y1 - y0) or 1) * ph

    out = [f'<rect x="{ox + LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{TOP}" x2="{px(t):.1f}" y2="{TOP + ph}" stroke="#eee"/>'
                   f'<text x="{px(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{short_number(t)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{ox + LEFT}" y1="{py(t):.1f}" x2="{ox + LEFT + pw}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{ox + LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{short_number(t)}</text>')
    out.append(f'<text x="{ox + LEFT + pw / 2}" y="{TOP + ph + 34}" text-anchor="middle">{html.escape(chart.xlabel)}</text>')
    out.append(f'<text transform="translate({ox + 16},{TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'{html.escape(chart.ylabel)}</text>')
    lx, ly = ox + LEFT, TOP + ph + 34 + LEGEND_ROW + 4          # the legend's first entry
    for i, (s, t) in enumerate(drawn):
        color = s.color or COLORS[i % len(COLORS)]
        style = 'stroke-width="1" stroke-opacity="0.35"' if s.thin else 'stroke-width="2"'
        for run in ([t] if t is not None else _segments(s.xs, s.ys)):
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" {style}/>')
            if s.points:
                out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>' for x, y in run]
        width = 28 + 7 * len(s.label) + 16                       # about 7 pixels a character at size 12
        if lx + width > ox + LEFT + pw and lx > ox + LEFT:         # the next row
            lx, ly = ox + LEFT, ly + LEGEND_ROW
        marker = f'<circle cx="{lx + 11}" cy="{ly - 4}" r="3" fill="{color}"/>' if s.points else ""
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="{color}" {style}/>{marker}'
                   f'<text x="{lx + 28}" y="{ly}">{html.escape(s.label)}</text>')
        lx += width
    return out


def svg(charts, title=None):
    """The SVG document of ``charts`` side by side, with an optional title above them."""
    width = W * len(charts)
    body = [f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>'] \
        if title else []
    for i, chart in enumerate(charts):
        body += _chart_svg(chart, i * W)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" '
            'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def write_svg(path, charts, title=None):
    """Write ``charts`` as one SVG file (through a temporary name, renamed into place)."""
    write_text(path, svg(charts, title))
    return path
