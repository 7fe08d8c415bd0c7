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

"""The audit report: one self-contained HTML file (inline SVG, inline CSS/JS, base64 PNG).

Nothing is fetched at load time, so the file opens offline and can be mailed around. Sections:

1. interaction over time: per bag, the model-level terms R / U_camera / U_lidar / S the spikes
   are found on (BROJA-local ``pid_broja`` when the model has it, else LSMI) stacked (positive
   parts), synergy spikes shaded, runtime alerts ticked;
2. gate distributions per action (box plots; LSMI terms for models without gates);
3. data vs model PID (the shortcut check): dataset-level atoms from the labels, from the model's
   predictions and, for simulator bags, the ground truth;
4. the top GapScore frames, 5. every spike, each with its camera thumbnail and LiDAR
   bird's-eye view.

A small inline script records JavaScript errors and checks that every plot has drawn marks with
a non-empty box; it writes the verdict into ``#report-status`` / ``body[data-status]`` so a
headless browser test can read it from the DOM.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.atomic import atomic_write_text
from dmil_ros.audit.tables import GATE_COLUMNS, TERM_COLUMNS, column, matrix

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
MAX_TIMELINES = 24  # bags drawn in section 1
TOP_FRAMES = 12
MAX_SPIKES = 40

Media = Mapping[tuple[str, int], Mapping[str, str]]

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;
background:#fafafa;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;font-size:12px}
td,th{padding:3px 8px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.muted{color:#777;font-size:12px}.bad{color:#b00020}.ok{color:#2e7d32}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;
border-radius:6px;padding:8px;font-size:12px;width:340px}.card img{margin-right:4px;
image-rendering:pixelated;border:1px solid #ccc}
svg.plot{background:#fff;border:1px solid #ddd;border-radius:4px;display:block;margin:4px 0}
svg text{font-size:10px;fill:#444}
#report-status{font-size:11px;color:#777}
"""

SCRIPT = """
(function(){
  var errors=[];
  window.addEventListener('error',function(e){errors.push(String(e.message||e));});
  function check(){
    var plots=document.querySelectorAll('svg.plot'),empty=[];
    for(var i=0;i<plots.length;i++){
      var p=plots[i],marks=p.querySelectorAll('.mark');
      var drawn=0;
      for(var j=0;j<marks.length;j++){var b=marks[j].getBBox();if(b.width>0||b.height>0){drawn++;}}
      if(drawn===0){empty.push(p.id||('plot'+i));}
    }
    var imgs=document.querySelectorAll('img'),broken=0;
    for(var k=0;k<imgs.length;k++){if(!imgs[k].complete||imgs[k].naturalWidth===0){broken++;}}
    var ok=errors.length===0&&empty.length===0&&broken===0;
    var msg=(ok?'ok':'error')+': '+plots.length+' plots drawn, '+imgs.length+' images';
    if(empty.length){msg+='; empty plots: '+empty.join(',');}
    if(broken){msg+='; broken images: '+broken;}
    if(errors.length){msg+='; script errors: '+errors.join(' | ');}
    var el=document.getElementById('report-status');el.textContent=msg;
    document.body.setAttribute('data-status',ok?'ok':'error');
  }
  window.addEventListener('load',check);
})();
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return '–'
    if isinstance(value, float | np.floating):
        return '–' if not math.isfinite(float(value)) else f'{float(value):.{digits}f}'
    return _esc(value)


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
        f'<svg class="plot" id="{_esc(plot_id)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    )


def _legend(names: Sequence[str]) -> str:
    items = ''.join(
        f'<span><i style="background:{COLOURS[n]}"></i>{_esc(LABELS[n])}</span>' for n in names
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
    lower = np.zeros_like(bt)
    for k, name in enumerate(COMPONENTS):
        upper = stack[:, k]
        pts_up = ' '.join(f'{a:.1f},{b:.1f}' for a, b in zip(xs, y(upper), strict=True))
        pts_lo = ' '.join(
            f'{a:.1f},{b:.1f}' for a, b in zip(xs[::-1], y(lower)[::-1], strict=True)
        )
        parts.append(
            f'<polygon class="mark" points="{pts_up} {pts_lo}" fill="{COLOURS[name]}" '
            f'fill-opacity="0.85"><title>{_esc(LABELS[name])}</title></polygon>'
        )
        lower = upper
    for a in alerts[:2000]:
        xa = float(x(a))
        parts.append(
            f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{top + ph}" y2="{top + ph + 5}" '
            'stroke="#b00020" stroke-width="1"/>'
        )
    for frac in (0.0, 0.5, 1.0):
        yy = float(y(frac * ymax))
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{yy + 3:.1f}" text-anchor="end">{frac * ymax:.2f}</text>'
        )
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
            f'{_esc(label)} (n={n})</text>'
        )
        for k, name in enumerate(names):
            col = values[:, k] if values.ndim == 2 and values.shape[0] else np.zeros(0)
            col = col[np.isfinite(col)]
            if col.size == 0:
                continue
            p5, q1, med, q3, p95 = (float(q) for q in np.percentile(col, [5, 25, 50, 75, 95]))
            cx = gx + (k + 0.75) * bw
            parts.append(
                f'<g class="mark"><title>{_esc(LABELS[name])} | {_esc(label)}: median '
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
    present = {k: v for k, v in series.items() if v}
    shades = ['#333333', '#8a8a8a', '#c9a227', '#6a3d9a']
    vals = [float(v.get(c, 0.0)) for v in present.values() for c in COMPONENTS]
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
            f'{_esc(LABELS[comp])}</text>'
        )
        for si, (name, atoms) in enumerate(present.items()):
            v = float(atoms.get(comp, 0.0))
            y0, y1 = sorted((y(0.0), y(v)))
            parts.append(
                f'<rect class="mark" x="{gx + (si + 0.5) * bw:.1f}" y="{y0:.1f}" '
                f'width="{bw - 2:.1f}" height="{max(y1 - y0, 1.0):.1f}" '
                f'fill="{shades[si % len(shades)]}"><title>{_esc(name)} {_esc(LABELS[comp])}: '
                f'{v:.3f} bits</title></rect>'
            )
    lx = left
    for si, name in enumerate(present):
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
            f'fill="{shades[si % len(shades)]}"/><text x="{lx + 14}" y="{height - 5}">'
            f'{_esc(name)}</text>'
        )
        lx += 16 + 7 * len(name) + 20
    parts.append('</svg>')
    return ''.join(parts)


def _img(media: Media, bag: str, stamp: int, kind: str, alt: str) -> str:
    data = media.get((bag, stamp), {}).get(kind)
    if not data:
        return f'<span class="muted">no {_esc(alt)}</span>'
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}" width="160">'


def _frame_card(
    title: str, rows: Sequence[tuple[str, str]], media: Media, bag: str, stamp: int
) -> str:
    table = ''.join(f'<tr><th>{_esc(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return (
        f'<div class="card"><b>{_esc(title)}</b><br>'
        f'{_img(media, bag, stamp, "camera", "camera")}'
        f'{_img(media, bag, stamp, "bev", "LiDAR BEV")}'
        f'<table>{table}</table></div>'
    )


def top_gapscore_rows(table: pa.Table, k: int = TOP_FRAMES) -> list[int]:
    """Row indices of the ``k`` frames with the highest GapScore (ties: table order)."""
    if table.num_rows == 0:
        return []
    g = column(table, 'gapscore').astype(np.float64)
    g = np.where(np.isfinite(g), g, -np.inf)
    order = np.argsort(-g, kind='stable')
    return [int(i) for i in order[:k] if np.isfinite(g[i])]


def _shortcut_text(summary: Mapping[str, Any]) -> str:
    data, model = summary.get('data_pid'), summary.get('model_pid')
    if not data or not model:
        return '<p class="muted">Needs labelled bags for the data-level PID.</p>'
    ds, ms = float(data['synergy']), float(model['synergy'])
    du = max(float(data['unique_camera']), float(data['unique_lidar']))
    mu = max(float(model['unique_camera']), float(model['unique_lidar']))
    if ds > 0.05 and ms < 0.5 * ds:
        verdict = (
            f'<b class="bad">Shortcut suspected:</b> the data holds {ds:.3f} bits of synergy, the'
            f' model uses {ms:.3f}; its unique terms ({mu:.3f} bits) stand in for the combination.'
        )
    else:
        verdict = (
            f'<b class="ok">No synergy shortcut:</b> data synergy {ds:.3f} bits, model '
            f'{ms:.3f} bits (max unique: data {du:.3f}, model {mu:.3f}).'
        )
    return f'<p>{verdict}</p>'


def render_report(
    summary: Mapping[str, Any], table: pa.Table, media: Media, title: str = 'dmil-ros audit'
) -> str:
    """The whole HTML document as a string."""
    out: list[str] = []
    frames = summary.get('frames', {})
    model = summary.get('model', {})
    out.append(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}'
        f'</title><style>{CSS}</style><script>{SCRIPT}</script></head><body>'
        f'<h1>{_esc(title)}</h1><div id="report-status">loading…</div>'
        f'<p class="muted">model {_esc(model.get("path", "?"))} ({_esc(model.get("kind", "?"))},'
        f' unimodal predictions from {_esc(model.get("unimodal", "?"))}) · '
        f'{frames.get("total", 0)} frames in {len(summary.get("bags", []))} bags · '
        f'{frames.get("labelled", 0)} labelled · {len(summary.get("spikes", []))} synergy spikes'
        f' · {frames.get("alerts", 0)} runtime alerts</p>'
    )
    # bags
    rows = []
    for bag in summary.get('bags', []):
        errs = '; '.join(str(e.get('message', e)) for e in bag.get('errors', []))
        cls = 'ok' if bag.get('status') == 'ok' else 'bad'
        rows.append(
            f'<tr><td>{_esc(bag.get("name"))}</td><td class="{cls}">{_esc(bag.get("status"))}'
            f'</td><td>{bag.get("frames", 0)}</td><td>{_esc(errs[:400])}</td></tr>'
        )
    out.append(
        '<h2>Bags</h2><table><tr><th>bag</th><th>status</th><th>frames</th><th>errors</th></tr>'
        + ''.join(rows)
        + '</table>'
    )
    warnings = [str(w) for w in summary.get('warnings') or []]
    if warnings:
        out.append(
            '<h2>Warnings</h2><ul class="warnings">'
            + ''.join(f'<li class="bad">{_esc(w)}</li>' for w in warnings)
            + '</ul>'
        )
    # 1. timelines
    group = str(summary.get('spikes_from') or 'lsmi_model').split(' ', 1)[0]
    group = group if group in TERM_COLUMNS else 'lsmi_model'
    what_terms = 'BROJA-local, pid_broja' if group == 'broja_model' else 'LSMI'
    out.append(f'<h2>Interaction over time (model-level {what_terms}, bits)</h2>')
    out.append(_legend(COMPONENTS))
    out.append(
        '<p class="muted">Stacked positive parts of the per-frame terms; red bands: synergy'
        ' spikes; red ticks: runtime monitor alerts.</p>'
    )
    bags = column(table, 'bag') if table.num_rows else np.zeros(0, object)
    stamps = column(table, 'stamp') if table.num_rows else np.zeros(0, np.int64)
    terms = matrix(table, TERM_COLUMNS[group])  # the estimate the spikes and the alarm use
    alerts = column(table, 'alert').astype(bool) if table.num_rows else np.zeros(0, bool)
    spikes_by_bag: dict[str, list[dict[str, Any]]] = {}
    for sp in summary.get('spikes', []):
        spikes_by_bag.setdefault(str(sp['bag']), []).append(sp)
    names = list(dict.fromkeys(bags.tolist()))
    for i, name in enumerate(names[:MAX_TIMELINES]):
        sel = bags == name
        t_ns = stamps[sel]
        origin = int(t_ns.min()) if t_ns.size else 0
        sec = (t_ns - origin).astype(np.float64) * 1e-9
        sp = [
            ((s['start'] - origin) * 1e-9, (s['end'] - origin) * 1e-9, float(s['peak']))
            for s in spikes_by_bag.get(name, [])
        ]
        out.append(f'<h3>{_esc(name)}</h3>')
        out.append(
            timeline_svg(
                f'timeline-{i}',
                seconds=sec,
                terms=terms[sel],
                spikes=sp,
                alerts=sec[alerts[sel]],
            )
        )
    if len(names) > MAX_TIMELINES:
        out.append(f'<p class="muted">{len(names) - MAX_TIMELINES} more bags not drawn.</p>')
    # 2. gates per action
    gates = matrix(table, GATE_COLUMNS)
    has_gates = bool(gates.size) and bool(np.isfinite(gates).any())
    values, what = (
        (gates, 'gates') if has_gates else (terms, f'model-level {what_terms} terms (no gates)')
    )
    actions = column(table, 'action') if table.num_rows else np.zeros(0, object)
    groups = {a: values[actions == a] for a in ACTIONS}
    out.append(f'<h2>Distribution per predicted action: {_esc(what)}</h2>')
    out.append(_legend(COMPONENTS))
    out.append(boxplot_svg('gates-per-action', groups, COMPONENTS, width=1100))
    # 3. data vs model PID
    gt = (summary.get('ground_truth') or {}).get('pid')
    out.append('<h2>Data vs model PID (dataset level, bits): the shortcut check</h2>')
    out.append(
        bars_svg(
            'pid-bars',
            {
                'data (labels)': summary.get('data_pid'),
                'model (predictions)': summary.get('model_pid'),
                'ground truth': gt,
            },
        )
    )
    out.append(_shortcut_text(summary))
    # 4. top GapScore frames
    out.append(f'<h2>Top {TOP_FRAMES} GapScore frames (fusion potential the model leaves)</h2>')
    cards = []
    labels = column(table, 'label') if table.num_rows else np.zeros(0, object)
    families = column(table, 'family') if table.num_rows else np.zeros(0, object)
    gap = column(table, 'gapscore') if table.num_rows else np.zeros(0)
    for row in top_gapscore_rows(table):
        bag, stamp = str(bags[row]), int(stamps[row])
        cards.append(
            _frame_card(
                f'{bag} @ {stamp * 1e-9:.3f} s',
                [
                    ('GapScore', _fmt(float(gap[row]))),
                    ('action / label', f'{_esc(actions[row])} / {_esc(labels[row] or "–")}'),
                    ('family', _esc(families[row] or '–')),
                    *[(LABELS[c], _fmt(float(terms[row, k]))) for k, c in enumerate(COMPONENTS)],
                ],
                media,
                bag,
                stamp,
            )
        )
    out.append('<div class="cards">' + ''.join(cards) + '</div>')
    # 5. spikes
    spikes = summary.get('spikes', [])
    out.append(f'<h2>Synergy spikes ({len(spikes)})</h2>')
    cards = []
    for sp in spikes[:MAX_SPIKES]:
        cards.append(
            _frame_card(
                f'{sp["bag"]}: {sp["start"] * 1e-9:.2f}-{sp["end"] * 1e-9:.2f} s',
                [
                    ('peak synergy', f'{float(sp["peak"]):.3f} bits'),
                    ('frames', _esc(sp.get('frames', '?'))),
                    ('mean synergy', _fmt(sp.get('mean'))),
                    ('families', _esc(sp.get('families', '–'))),
                ],
                media,
                str(sp['bag']),
                int(sp['peak_stamp']),
            )
        )
    if len(spikes) > MAX_SPIKES:
        cards.append(
            f'<p class="muted">{len(spikes) - MAX_SPIKES} more spikes in summary.json</p>'
        )
    out.append('<div class="cards">' + ''.join(cards) + '</div>')
    out.append(
        '<h2>Summary</h2><details><summary>summary.json</summary><pre>'
        + _esc(json.dumps(summary, indent=1, default=str)[:200_000])
        + '</pre></details></body></html>'
    )
    return ''.join(out)


def media_wanted(summary: Mapping[str, Any], table: pa.Table) -> set[tuple[str, int]]:
    """The ``(bag, stamp)`` frames whose pictures the report shows."""
    wanted = set()
    if table.num_rows:
        bags, stamps = column(table, 'bag'), column(table, 'stamp')
        for row in top_gapscore_rows(table):
            wanted.add((str(bags[row]), int(stamps[row])))
    for sp in summary.get('spikes', [])[:MAX_SPIKES]:
        wanted.add((str(sp['bag']), int(sp['peak_stamp'])))
    return wanted


def write_report(
    path: Path, summary: Mapping[str, Any], table: pa.Table, media: Media, title: str = ''
) -> Path:
    """Write the report atomically; returns its path."""
    text = render_report(summary, table, media, title or 'dmil-ros audit')
    atomic_write_text(path, text)
    return path


__all__ = [
    'bars_svg',
    'boxplot_svg',
    'media_wanted',
    'render_report',
    'timeline_svg',
    'top_gapscore_rows',
    'write_report',
]
