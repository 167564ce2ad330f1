"""Line charts drawn with Pillow (a dependency of tensorboard, so always installed).

matplotlib is not a worldflux dependency; the comparison's plots (fidelity vs horizon, return vs
planning budget) are drawn here as RGB arrays, written as PNG files and logged as TensorBoard
images. Axes, ticks, one coloured polyline per series (baselines dashed) and a legend, nothing
more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Series colours (RGB), cycled.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
WIDTH, HEIGHT = 560, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 190, 28, 40


@dataclass
class Series:
    """One curve: its label, points and whether it is a baseline (drawn dashed)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    dashed: bool = False


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _label(v: float) -> str:
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-2):
        return f"{v:.1e}"
    return f"{v:.3g}"


def line_chart(
    series: Sequence[Series], title: str, xlabel: str, ylabel: str, log_x: bool = False
) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` uint8 of ``series`` (non-finite points are skipped)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    pts = [
        (float(x), float(y))
        for s in series
        for x, y in zip(s.x, s.y)
        if math.isfinite(float(y)) and (not log_x or float(x) > 0)
    ]
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text((LEFT, 6), title, fill="black", font=font)
    draw.text(((x0 + x1) // 2 - 3 * len(xlabel), HEIGHT - 16), xlabel, fill="black", font=font)
    draw.text((4, 6), ylabel, fill="black", font=font)
    if not pts:
        return np.asarray(img)

    def fx(v: float) -> float:
        return math.log10(v) if log_x else v

    xs, ys = [fx(p[0]) for p in pts], [p[1] for p in pts]
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    if yhi == ylo:
        ylo, yhi = ylo - 1, yhi + 1
    pad = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = x0 + (fx(x) - xlo) / (xhi - xlo) * (x1 - x0)
        py = y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)
        return px, py

    for v in _ticks(ylo, yhi):
        _, py = to_px(10**xlo if log_x else xlo, v)
        draw.line([x0 - 4, py, x0, py], fill="black")
        draw.text((4, py - 5), _label(v), fill="black", font=font)
    for v in sorted({p[0] for p in pts}):
        px, _ = to_px(v, ylo)
        draw.line([px, y1, px, y1 + 4], fill="black")
        draw.text((px - 6, y1 + 6), _label(v), fill="black", font=font)
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        line = [to_px(float(x), float(y)) for x, y in zip(s.x, s.y) if math.isfinite(float(y))]
        for a, b in zip(line, line[1:]):
            _segment(draw, a, b, colour, s.dashed)
        for px, py in line:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        ly = TOP + 4 + 14 * i
        _segment(draw, (x1 + 8, ly + 5), (x1 + 28, ly + 5), colour, s.dashed)
        draw.text((x1 + 32, ly), s.label[:26], fill="black", font=font)
    return np.asarray(img)


def _segment(
    draw: object,
    a: tuple[float, float],
    b: tuple[float, float],
    colour: tuple[int, int, int],
    dashed: bool,
) -> None:
    line = draw.line  # type: ignore[attr-defined]
    if not dashed:
        line([a, b], fill=colour, width=2)
        return
    length = math.dist(a, b)
    steps = max(1, int(length // 6))
    for k in range(0, steps, 2):  # 6-px dashes
        t0, t1 = k / steps, min((k + 1) / steps, 1.0)
        p = (a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0)
        q = (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)
        line([p, q], fill=colour, width=2)


def write_png(image: np.ndarray, path: str) -> None:
    """Save an RGB array as a PNG file."""
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")
