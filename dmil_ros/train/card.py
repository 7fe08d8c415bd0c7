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

"""Model cards (markdown) for exported models: data, schedule, metrics, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmil_ros.actions import FAMILIES
from dmil_ros.errors import ConfigError

SIMULATOR_LIMITS = """\
- Trained and evaluated on the project's simulator (hallway scenes, four scene families); no
  real-robot data has been seen: expect a domain gap.
- The scene families are a simulator construct; on real data the gates are an interaction
  profile, not a family classifier.
"""

LIMITS = """\
- Trained on the bags above only: other sensors, mountings or places are off its distribution.
- Actions are the expert's discrete forward / left / right / stop; the model is not a planner.
"""

PID_LIMITS = """\
- {heads}: per-frame estimates fitted on the features of the frames the PID heads line names
  (`fit_on`, `fit_frames`); off that distribution (new sensors, new scenes) they extrapolate.
"""

BROJA_LIMITS = """\
- A frame whose predicted action the BROJA table never saw with its camera or LiDAR cluster
  gets a term of about +-60 bits in the raw `pid_broja` output (r, a unique term or s: the
  floored pointwise information of an event the table holds impossible); the node and the
  replay publish NaN for that frame and count it, and the audit leaves it out.
"""

NO_PID_LIMITS = """\
- No PID heads (`pid_lsmi`, `pid_broja`): with this model the node publishes no per-frame
  interactions and raises no synergy alarm.
"""

PID_HEADS = ('pid_lsmi', 'pid_broja')


def pid_limits(outputs: list[str]) -> str:
    """The limits of the PID heads among ``outputs`` (what the card says of the ones shipped)."""
    heads = [h for h in PID_HEADS if h in outputs]
    if not heads:
        return NO_PID_LIMITS
    text = PID_LIMITS.format(heads=' / '.join(f'`{h}`' for h in heads))
    return text + (BROJA_LIMITS if 'pid_broja' in heads else '')


SCENE_BOUNDARIES = """\
- Simulator scenes switch between frames, so at each scene boundary a camera frame can pair
  with a sweep of the neighbouring scene (about 1.4% of pairs); such pairs have no family and
  count only in the overall figures.
"""


def _pct(v: Any) -> str:
    return '-' if v is None else f'{100 * v:.1f}'


def metrics_table(models: dict[str, dict[str, Any]]) -> str:
    head = '| model | accuracy | ' + ' | '.join(FAMILIES) + ' | synergy ind. | gate = family |'
    rule = '|' + '---|' * (len(FAMILIES) + 4)
    rows = [head, rule]
    for name, m in models.items():
        fam = m.get('per_family', {})
        cells = [
            _pct(m.get('accuracy')),
            *(_pct(fam.get(f)) for f in FAMILIES),
            _pct(m.get('synergy_indicator')),
            _pct(m.get('gate_family_agreement')),
        ]
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def render_card(
    name: str,
    config: dict[str, Any],
    training: dict[str, Any],
    report: dict[str, Any],
    *,
    evaluation: dict[str, Any] | None = None,
    notes: str = '',
) -> str:
    kind = config['model']['kind']
    sched = training.get('schedule', [])
    pre, data = config['preprocess'], config['data']
    val_bags = training.get('val_bags') or []
    validation = f'the bags {", ".join(val_bags)}' if val_bags else 'time blocks of the same bags'
    label_topic = (
        data['action_topic'] if data['label_source'] == 'action' else data['cmd_vel_topic']
    )
    lines = [
        f'# {name}',
        '',
        (
            f'Kind: **{kind}** (`dmil_ros.kind` in the ONNX metadata). Inputs `image` '
            f'(B,3,{pre["image_height"]},{pre["image_width"]}) and `lidar` '
            f'(B,2,{pre["beams"]},{pre["azimuth_bins"]}) exactly as '
            '`dmil_ros.runtime.preprocess` prepares them; '
            f'outputs {", ".join(f"`{o}`" for o in report["outputs"])}.'
        ),
        '',
        '## Data',
        '',
        (
            f'- Training bags: {", ".join(training.get("bags", [])) or "see data.json"} '
            f'({training.get("train_frames")} training / {training.get("val_frames")} validation '
            f'camera + LiDAR pairs, validation = {validation}).'
        ),
        f'- Labels: `{data["label_source"]}` ({label_topic}); pairing slop {data["slop"]} s.',
    ]
    if evaluation:
        lines.append(f'- Held-out evaluation bags (other seeds): {", ".join(evaluation["bags"])}.')
    lines += ['', '## Schedule', '']
    for ph in sched:
        lines.append(f'- stage {ph["stage"]}: {ph["epochs"]} epochs, Adam lr {ph["lr"]}')
    loss = config['loss']
    lines += [
        (
            f'- loss weights: alpha {loss["alpha"]}, beta {loss["beta"]}, gamma {loss["gamma"]}, '
            f'gate_profile {loss["gate_profile"]}, gate_family {loss["gate_family"]} '
            '(0: the scene family is never used in training)'
        ),
        (
            f'- training time {training.get("train_seconds")} s on {training.get("threads")} '
            'thread(s) (benchmarks/bench_train.py times a run)'
        ),
        f'- LiDAR encoder: `{config["model"]["lidar_encoder"]}`',
        '',
        '## Metrics',
        '',
    ]
    if 'val' in training:  # the export leaves out model.pt's metrics for another checkpoint
        lines += [
            'Validation (best epoch of the last stage):',
            '',
            metrics_table({name: training.get('val', {})}),
        ]
    else:  # the run's summary holds model.pt's metrics, not this checkpoint's
        lines.append(
            f'Exported from the checkpoint `{training.get("checkpoint")}`: the run recorded '
            'validation metrics for `model.pt` only; measure this one with `dmil-ros evaluate`.'
        )
    if evaluation:
        lines += ['', 'Held-out seeds (`dmil-ros evaluate`), all shipped models:', '',
                  metrics_table(evaluation['models'])]  # fmt: skip
    lines += [
        '',
        (
            'Export check: onnx.checker (full) passed; max |onnxruntime - torch| = '
            f'{report["max_abs_diff_probabilities"]:.2g} on probabilities, '
            f'{report["max_scaled_diff"]:.2g} scaled on unbounded outputs, over '
            f'{report["batch"]} {report.get("sample", "frames")}; file size {report["bytes"]} '
            'bytes.'
        ),
    ]
    static = report.get('static_graph')
    if static:
        before, after = static['nodes']
        left = static['control_flow_left']
        lines[-1] += (
            f' Static graph (no control flow fixed by weights and shapes): {before} -> {after} '
            f'nodes; control flow left: {", ".join(left) if left else "none"}.'
        )
    if 'pid' in training:
        lines += ['', f'PID heads: `{json.dumps(training["pid"])}`']
    if notes:
        lines += ['', notes.strip()]
    simulated = training.get('simulator_truth', False)  # set by the export
    limits = LIMITS + pid_limits(report['outputs'])
    if simulated:
        limits = SIMULATOR_LIMITS + limits + SCENE_BOUNDARIES
    lines += ['', '## Limits', '', limits.rstrip()]
    return '\n'.join(lines)


def load_evaluation(text: str, source: str) -> dict[str, Any]:
    """The output of ``dmil-ros evaluate --json`` for a card, checked: a ``'bags'`` list and a
    ``'models'`` mapping (what :func:`render_card` reads); ``source`` names it in errors."""
    try:
        evaluation = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f'{source}: not JSON ({exc})'
        raise ConfigError(msg) from exc
    if not (
        isinstance(evaluation, dict)
        and isinstance(evaluation.get('bags'), list)
        and isinstance(evaluation.get('models'), dict)
    ):
        msg = (
            f"{source}: not the output of `dmil-ros evaluate --json` (a 'bags' list and a "
            "'models' mapping)"
        )
        raise ConfigError(msg)
    return evaluation


def write_card(
    path: Path,
    config: dict[str, Any],
    training: dict[str, Any],
    report: dict[str, Any],
    *,
    evaluation: dict[str, Any] | None = None,
    notes: str = '',
) -> None:
    text = render_card(path.stem, config, training, report, evaluation=evaluation, notes=notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')
