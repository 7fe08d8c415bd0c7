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

1. interaction over time: per bag, the per-frame terms R / U_camera / U_lidar / S the spikes
   are found on (the node's: the model's ``pid_broja`` head, else its ``pid_lsmi``, else the
   model-level LSMI) stacked (positive parts), synergy spikes shaded, runtime alerts ticked;
2. gate distributions per action (box plots; those terms for models without gates);
3. data vs model PID (the shortcut check): dataset-level atoms from the labels, from the model's
   predictive distribution and, for simulator bags, the ground truth;
4. the top GapScore frames, each with the model-level terms its GapScore came from
   (``summary['gapscore_from']``), 5. every spike; each with its camera thumbnail and LiDAR
   bird's-eye view.

A small inline script records JavaScript errors and checks that every plot has drawn marks with
a non-empty box; it writes the verdict into ``#report-status`` / ``body[data-status]`` so a
headless browser test can read it from the DOM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.atomic import atomic_write_text
from dmil_ros.audit.charts import (
    LABELS,
    bars_svg,
    boxplot_svg,
    esc,
    fmt,
    legend,
    number,
    timeline_svg,
)
from dmil_ros.audit.dataset_pid import finite_atoms
from dmil_ros.audit.tables import GATE_COLUMNS, TERM_COLUMNS, column, matrix

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


def _img(media: Media, bag: str, stamp: int, kind: str, alt: str) -> str:
    data = media.get((bag, stamp), {}).get(kind)
    if not data:
        return f'<span class="muted">no {esc(alt)}</span>'
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}" width="160">'


def _frame_card(
    title: str, rows: Sequence[tuple[str, str]], media: Media, bag: str, stamp: int
) -> str:
    table = ''.join(f'<tr><th>{esc(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return (
        f'<div class="card"><b>{esc(title)}</b><br>'
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


def _compared_model_pid(summary: Mapping[str, Any]) -> tuple[Any, str]:
    """The model-level PID to set beside ``data_pid`` and its legend: on the labelled frames
    when some bags have no labels (``model_labelled_pid``), so both see the same frames."""
    if summary.get('model_labelled_pid'):
        return summary['model_labelled_pid'], 'model (predictive distribution, labelled frames)'
    return summary.get('model_pid'), 'model (predictive distribution)'


def _missing_pid_reasons(summary: Mapping[str, Any]) -> str:
    """Why ``data_pid`` / the model PID are absent, from ``pid_estimator``'s error entries."""
    estimator = summary.get('pid_estimator') or {}
    reasons = []
    for level, pid_key in (('data', 'data_pid'), ('model', 'model_pid')):
        if summary.get(pid_key):
            continue
        error = (estimator.get(level) or {}).get('error')
        if error:
            reasons.append(f'{level} level: {error}')
        elif level == 'data':
            reasons.append('data level: needs labelled bags')
        else:
            reasons.append('model level: no frame with a prediction')
    return '; '.join(reasons)


def _shortcut_text(summary: Mapping[str, Any]) -> str:
    given, (compared, _) = summary.get('data_pid'), _compared_model_pid(summary)
    data, model = finite_atoms(given), finite_atoms(compared)
    if data is None or model is None:
        why = _missing_pid_reasons(summary) or 'the model PID on the labelled frames is missing'
        if given and compared:
            why = 'a dataset-level PID has atoms that are not finite numbers'
        return f'<p class="muted">No shortcut check: {esc(why)}.</p>'
    ds, ms = data['synergy'], model['synergy']
    du = max(data['unique_camera'], data['unique_lidar'])
    mu = max(model['unique_camera'], model['unique_lidar'])
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
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}'
        f'</title><style>{CSS}</style><script>{SCRIPT}</script></head><body>'
        f'<h1>{esc(title)}</h1><div id="report-status">loading…</div>'
        f'<p class="muted">model {esc(model.get("path", "?"))} ({esc(model.get("kind", "?"))},'
        f' unimodal predictions from {esc(model.get("unimodal", "?"))}) · '
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
            f'<tr><td>{esc(bag.get("name"))}</td><td class="{cls}">{esc(bag.get("status"))}'
            f'</td><td>{bag.get("frames", 0)}</td><td>{esc(errs[:400])}</td></tr>'
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
            + ''.join(f'<li class="bad">{esc(w)}</li>' for w in warnings)
            + '</ul>'
        )
    # 1. timelines
    group = str(summary.get('spikes_from') or 'lsmi_model').split(' ', 1)[0]
    group = group if group in TERM_COLUMNS else 'lsmi_model'
    what_terms = {
        'node': "the node's terms: the model's pid_broja or pid_lsmi head",
        'broja_model': 'model-level BROJA-local',
    }.get(group, 'model-level LSMI')
    out.append(f'<h2>Interaction over time ({what_terms}, bits)</h2>')
    out.append(legend(COMPONENTS))
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
    if not names:  # an empty chart would read as a plot that failed to draw
        out.append('<p class="muted">No audited frames to draw.</p>')
    # seconds from each bag's first frame, in the timelines and the cards alike
    origins = {name: int(stamps[bags == name].min()) for name in names}
    for i, name in enumerate(names[:MAX_TIMELINES]):
        sel = bags == name
        t_ns = stamps[sel]
        origin = origins[name]
        sec = (t_ns - origin).astype(np.float64) * 1e-9
        sp = [
            ((s['start'] - origin) * 1e-9, (s['end'] - origin) * 1e-9, _peak(s))
            for s in spikes_by_bag.get(name, [])
        ]
        out.append(f'<h3>{esc(name)}</h3>')
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
    values, what = (gates, 'gates') if has_gates else (terms, f'{what_terms} terms (no gates)')
    actions = column(table, 'action') if table.num_rows else np.zeros(0, object)
    groups = {a: values[actions == a] for a in ACTIONS}
    out.append(f'<h2>Distribution per predicted action: {esc(what)}</h2>')
    if values.size and np.isfinite(values).any():
        out.append(legend(COMPONENTS))
        out.append(boxplot_svg('gates-per-action', groups, COMPONENTS, width=1100))
    else:  # no frames, or a model without gates whose terms could not be fitted
        out.append(f'<p class="muted">No finite values to draw ({table.num_rows} frames).</p>')
    # 3. data vs model PID
    gt = (summary.get('ground_truth') or {}).get('pid')
    compared, model_name = _compared_model_pid(summary)
    out.append('<h2>Data vs model PID (dataset level, bits): the shortcut check</h2>')
    series = {  # what is drawn: the finite atoms (summary.json holds NaN as null)
        'data (labels)': finite_atoms(summary.get('data_pid'), complete=False),
        model_name: finite_atoms(compared, complete=False),
        'ground truth': finite_atoms(gt, complete=False),
    }
    if any(series.values()):
        out.append(bars_svg('pid-bars', series))
    else:  # an empty chart would read as a plot that failed to draw
        out.append('<p class="muted">No dataset-level PID and no ground truth to draw.</p>')
    out.append(_shortcut_text(summary))
    # 4. top GapScore frames
    out.append(f'<h2>Top {TOP_FRAMES} GapScore frames (fusion potential the model leaves)</h2>')
    cards = []
    labels = column(table, 'label') if table.num_rows else np.zeros(0, object)
    families = column(table, 'family') if table.num_rows else np.zeros(0, object)
    gap = column(table, 'gapscore') if table.num_rows else np.zeros(0)
    # the terms GapScore was computed from (model level), not the spikes' node terms
    gap_group = str(summary.get('gapscore_from') or 'lsmi_model')
    gap_terms = matrix(table, TERM_COLUMNS.get(gap_group, TERM_COLUMNS['lsmi_model']))
    for row in top_gapscore_rows(table):
        bag, stamp = str(bags[row]), int(stamps[row])
        cards.append(
            _frame_card(
                f'{bag} @ {(stamp - origins[bag]) * 1e-9:.3f} s',
                [
                    ('stamp (ns)', str(stamp)),
                    ('GapScore', fmt(float(gap[row]))),
                    ('action / label', f'{esc(actions[row])} / {esc(labels[row] or "–")}'),
                    ('family', esc(families[row] or '–')),
                    *[
                        (f'{LABELS[c]} ({gap_group})', fmt(float(gap_terms[row, k])))
                        for k, c in enumerate(COMPONENTS)
                    ],
                ],
                media,
                bag,
                stamp,
            )
        )
    if not cards:
        out.append('<p class="muted">No frame with a finite GapScore.</p>')
    out.append('<div class="cards">' + ''.join(cards) + '</div>')
    # 5. spikes
    spikes = summary.get('spikes', [])
    out.append(f'<h2>Synergy spikes ({len(spikes)})</h2>')
    cards = []
    for sp in spikes[:MAX_SPIKES]:
        origin = origins[str(sp['bag'])]  # a spike's frames are in the table
        cards.append(
            _frame_card(
                f'{sp["bag"]}: {(sp["start"] - origin) * 1e-9:.2f}-'
                f'{(sp["end"] - origin) * 1e-9:.2f} s',
                [
                    ('start stamp (ns)', str(sp['start'])),
                    ('peak synergy', f'{fmt(number(sp.get("peak")))} bits'),
                    ('frames', esc(sp.get('frames', '?'))),
                    ('mean synergy', fmt(sp.get('mean'))),
                    ('families', esc(sp.get('families', '–'))),
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
        + esc(json.dumps(summary, indent=1, default=str)[:200_000])
        + '</pre></details></body></html>'
    )
    return ''.join(out)


def _peak(spike: Mapping[str, Any]) -> float:
    """A spike's peak synergy (NaN where summary.json has null)."""
    peak = number(spike.get('peak'))
    return float('nan') if peak is None else peak


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


def paired_sweeps(table: pa.Table, wanted: set[tuple[str, int]]) -> dict[str, dict[int, int]]:
    """``{bag: {camera stamp: LiDAR stamp}}`` of the sweep each wanted frame was paired with
    (its first row's, should a clock reset repeat the stamp); frames without one are left out."""
    out: dict[str, dict[int, int]] = {}
    if not table.num_rows or not wanted:
        return out
    bags, stamps = column(table, 'bag'), column(table, 'stamp')
    lidar = column(table, 'lidar_stamp')
    # the rows of the wanted stamps only, not a Python loop over every frame
    candidates = np.isin(stamps, np.fromiter((s for _, s in wanted), np.int64, len(wanted)))
    for row in np.flatnonzero(candidates & (lidar >= 0)):
        key = (str(bags[row]), int(stamps[row]))
        if key in wanted:
            out.setdefault(key[0], {}).setdefault(key[1], int(lidar[row]))
    return out


def write_report(
    path: Path, summary: Mapping[str, Any], table: pa.Table, media: Media, title: str = ''
) -> Path:
    """Write the report atomically; returns its path."""
    text = render_report(summary, table, media, title or 'dmil-ros audit')
    atomic_write_text(path, text)
    return path


__all__ = [
    'media_wanted',
    'paired_sweeps',
    'render_report',
    'top_gapscore_rows',
    'write_report',
]
