# Copyright 2026 The dmil_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Inline SVG charts for the audit report: stacked timelines, box plots, grouped bars.

Every chart is a ``<svg class="plot">`` whose drawn elements carry the class ``mark``, which the
report's load-time check counts (:mod:`dmil_ros.audit.report`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import COMPONENTS

COLOURS = {
    'redundancy': '#4c78a8',
    'unique_camera': '#f58518',
    'unique_lidar': '#54a24b',
    'synergy': '#e45756',
}
LABELS = {
    'redundancy': 'R',
    'unique_camera': 'U camera',
    'unique_lidar': 'U LiDAR',
    'synergy': 'S',
}
MAX_POINTS = 600  # time bins per plot


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any) -> float | None:
    """``value`` as a finite float; None for anything else (summary.json stores NaN as null)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def fmt(value: Any) -> str:
    if value is None:
        return '–'
    if isinstance(value, float | np.floating):
        return '–' if not math.isfinite(float(value)) else f'{float(value):.3f}'
    return esc(value)


def _bins(values: npt.NDArray[np.float64], n_bins: int) -> npt.NDArray[np.float64]:
    """Mean of ``values`` (N, K) over ``n_bins`` equal index bins (N <= n_bins: unchanged)."""
    n = values.shape[0]
    if n <= n_bins:
        return values
    edges = np.linspace(0, n, n_bins + 1).astype(np.int64)
    sums = np.add.reduceat(values, edges[:-1], axis=0)
    return np.asarray(sums / np.diff(edges)[:, None], np.float64)


def _svg_open(plot_id: str, width: int, height: int) -> str:
    return (
        f'<svg class="plot" id="{esc(plot_id)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    )


def legend(names: Sequence[str]) -> str:
    items = ''.join(
        f'<span><i style="background:{COLOURS[n]}"></i>{esc(LABELS[n])}</span>' for n in names
    )
    return f'<div class="legend">{items}</div>'


def timeline_svg(
    plot_id: str,
    *,
    seconds: npt.NDArray[np.float64],
    terms: npt.NDArray[np.float64],
    spikes: Sequence[tuple[float, float, float]],
    alerts: npt.NDArray[np.float64],
    width: int = 1100,
    height: int = 170,
) -> str:
    """Stacked positive parts of the four terms against time, spikes shaded, alerts ticked."""
    left, right, top, bottom = 44, 10, 10, 22
    pw, ph = width - left - right, height - top - bottom
    t = seconds if seconds.size else np.zeros(1)
    t0, t1 = float(t.min()), float(t.max())
    span = max(t1 - t0, 1e-9)
    pos = np.clip(np.nan_to_num(terms, nan=0.0), 0.0, None)  # (N, 4)
    binned = _bins(np.column_stack([t, pos]) if terms.size else np.zeros((1, 5)), MAX_POINTS)
    bt, stack = binned[:, 0], np.cumsum(binned[:, 1:], axis=1)  # (B,), (B, 4)
    ymax = max(float(stack[:, -1].max()) if stack.size else 0.0, 0.5)

    def x(v: npt.NDArray[np.float64] | float) -> Any:
        return left + (np.asarray(v) - t0) / span * pw

    def y(v: npt.NDArray[np.float64] | float) -> Any:
        return top + ph - np.asarray(v) / ymax * ph

    parts = [_svg_open(plot_id, width, height)]
    for a, b, peak in spikes:
        xa, xb = float(x(a)), float(x(b))
        parts.append(
            f'<rect class="mark" x="{xa:.1f}" y="{top}" width="{max(xb - xa, 1.5):.1f}" '
            f'height="{ph}" fill="#e45756" fill-opacity="0.12"><title>spike {a:.1f}-{b:.1f} s,'
            f' peak S {peak:.2f} bits</title></rect>'
        )
    xs = x(bt)
    single = t1 <= t0  # one frame (or one stamp): a polygon there has no area, so a bar
    if single:
        xs, stack = np.array([left + pw / 2]), stack.mean(axis=0, keepdims=True)
    lower = np.zeros(len(xs))
    for k, name in enumerate(COMPONENTS):
        upper = stack[:, k]
        if single:
            top_y, low_y = float(y(upper[0])), float(y(lower[0]))
            parts.append(
                f'<rect class="mark" x="{float(xs[0]) - 3:.1f}" y="{top_y:.1f}" width="6" '
                f'height="{low_y - top_y:.1f}" fill="{COLOURS[name]}" fill-opacity="0.85">'
                f'<title>{esc(LABELS[name])}</title></rect>'
            )
            lower = upper
            continue
        pts_up = ' '.join(f'{a:.1f},{b:.1f}' for a, b in zip(xs, y(upper), strict=True))
        pts_lo = ' '.join(
            f'{a:.1f},{b:.1f}' for a, b in zip(xs[::-1], y(lower)[::-1], strict=True)
        )
        parts.append(
            f'<polygon class="mark" points="{pts_up} {pts_lo}" fill="{COLOURS[name]}" '
            f'fill-opacity="0.85"><title>{esc(LABELS[name])}</title></polygon>'
        )
        lower = upper
    for a in alerts[:2000]:
        xa = float(x(a))
        parts.append(
            f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{top + ph}" y2="{top + ph + 5}" '
            'stroke="#b00020" stroke-width="1"/>'
        )
    parts.extend(_gridlines(0.0, ymax, left, pw, lambda v: float(y(v))))
    for frac in np.linspace(0, 1, 6):
        tv = t0 + frac * span
        parts.append(
            f'<text x="{float(x(tv)):.1f}" y="{height - 6}" text-anchor="middle">'
            f'{tv - t0:.0f} s</text>'
        )
    parts.append(f'<text x="4" y="{top + 8}" transform="rotate(0)">bits</text></svg>')
    return ''.join(parts)


def _gridlines(
    lo: float, hi: float, left: float, width: float, y: Callable[[float], float]
) -> list[str]:
    """Horizontal grid lines with value labels at the bottom, middle and top of a plot."""
    parts = []
    for frac in (0.0, 0.5, 1.0):
        level = lo + frac * (hi - lo)
        parts.append(
            f'<line x1="{left}" x2="{left + width}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y(level) + 3:.1f}" text-anchor="end">'
            f'{level:.2f}</text>'
        )
    return parts


def boxplot_svg(
    plot_id: str,
    groups: Mapping[str, npt.NDArray[np.float64]],
    names: Sequence[str],
    width: int = 540,
    height: int = 190,
) -> str:
    """Box plots (quartiles, 5-95 % whiskers): one group per action, one box per component."""
    left, right, top, bottom = 40, 10, 10, 26
    pw, ph = width - left - right, height - top - bottom
    finite = [v[np.isfinite(v)] for g in groups.values() for v in g.T]
    allv = np.concatenate(finite) if finite else np.zeros(1)
    lo = min(0.0, float(np.percentile(allv, 1))) if allv.size else 0.0
    hi = max(1e-6, float(np.percentile(allv, 99))) if allv.size else 1.0
    hi = max(hi, lo + 1e-6)

    def y(v: float) -> float:
        return top + ph - (min(max(v, lo), hi) - lo) / (hi - lo) * ph

    parts = [_svg_open(plot_id, width, height)]
    parts.extend(_gridlines(lo, hi, left, pw, y))
    n_groups = max(len(groups), 1)
    gw = pw / n_groups
    bw = gw / (len(names) + 1.5)
    for gi, (label, values) in enumerate(groups.items()):
        gx = left + gi * gw
        n = int(values.shape[0])
        parts.append(
            f'<text x="{gx + gw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
            f'{esc(label)} (n={n})</text>'
        )
        for k, name in enumerate(names):
            col = values[:, k] if values.ndim == 2 and values.shape[0] else np.zeros(0)
            col = col[np.isfinite(col)]
            if col.size == 0:
                continue
            p5, q1, med, q3, p95 = (float(q) for q in np.percentile(col, [5, 25, 50, 75, 95]))
            cx = gx + (k + 0.75) * bw
            parts.append(
                f'<g class="mark"><title>{esc(LABELS[name])} | {esc(label)}: median '
                f'{med:.3f}, IQR {q1:.3f}-{q3:.3f}</title>'
                f'<line x1="{cx + bw / 2:.1f}" x2="{cx + bw / 2:.1f}" y1="{y(p95):.1f}" '
                f'y2="{y(p5):.1f}" stroke="#555"/>'
                f'<rect x="{cx + 1:.1f}" y="{y(q3):.1f}" width="{bw - 2:.1f}" '
                f'height="{max(y(q1) - y(q3), 1.0):.1f}" fill="{COLOURS[name]}" stroke="#333"/>'
                f'<line x1="{cx + 1:.1f}" x2="{cx + bw - 1:.1f}" y1="{y(med):.1f}" '
                f'y2="{y(med):.1f}" stroke="#000" stroke-width="1.5"/></g>'
            )
    parts.append('</svg>')
    return ''.join(parts)


def bars_svg(
    plot_id: str,
    series: Mapping[str, Mapping[str, float] | None],
    width: int = 540,
    height: int = 200,
) -> str:
    """Grouped bars: one group per PID atom, one bar per source (data, model, ground truth)."""
    left, right, top, bottom = 40, 10, 10, 40
    pw, ph = width - left - right, height - top - bottom
    present = {k: v for k, v in series.items() if isinstance(v, Mapping) and v}
    shades = ['#333333', '#8a8a8a', '#c9a227', '#6a3d9a']
    vals = [number(v.get(c)) or 0.0 for v in present.values() for c in COMPONENTS]
    lo = min([0.0, *vals])
    hi = max([0.1, *vals])

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    parts = [_svg_open(plot_id, width, height)]
    parts.extend(_gridlines(lo, hi, left, pw, y))
    gw = pw / len(COMPONENTS)
    bw = gw / (max(len(present), 1) + 1)
    for ci, comp in enumerate(COMPONENTS):
        gx = left + ci * gw
        parts.append(
            f'<text x="{gx + gw / 2:.1f}" y="{top + ph + 14}" text-anchor="middle">'
            f'{esc(LABELS[comp])}</text>'
        )
        for si, (name, atoms) in enumerate(present.items()):
            v = number(atoms.get(comp))
            if v is None:  # no bar rather than a made-up 0
                continue
            y0, y1 = sorted((y(0.0), y(v)))
            parts.append(
                f'<rect class="mark" x="{gx + (si + 0.5) * bw:.1f}" y="{y0:.1f}" '
                f'width="{bw - 2:.1f}" height="{max(y1 - y0, 1.0):.1f}" '
                f'fill="{shades[si % len(shades)]}"><title>{esc(name)} {esc(LABELS[comp])}: '
                f'{v:.3f} bits</title></rect>'
            )
    lx = left
    for si, name in enumerate(present):
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
            f'fill="{shades[si % len(shades)]}"/><text x="{lx + 14}" y="{height - 5}">'
            f'{esc(name)}</text>'
        )
        lx += 16 + 7 * len(name) + 20
    parts.append('</svg>')
    return ''.join(parts)


__all__ = [
    'COLOURS',
    'LABELS',
    'MAX_POINTS',
    'bars_svg',
    'boxplot_svg',
    'esc',
    'fmt',
    'legend',
    'number',
    'timeline_svg',
]
