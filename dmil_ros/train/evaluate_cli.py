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

"""``dmil-ros evaluate --model M.onnx [--model ...] BAG... [--json FILE]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmil_ros.train.dataset import Arrays

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--model',
        type=Path,
        action='append',
        required=True,
        help='ONNX model (repeat to compare several)',
    )
    parser.add_argument('bags', type=Path, nargs='+', metavar='BAG', help='labelled bags')
    parser.add_argument('--json', type=Path, default=None, help='write the results here')
    parser.add_argument('--cache', type=Path, default=None, help='decoded-tensor cache')
    parser.add_argument('--no-cache', action='store_true', help='no cache')  # fmt: skip


def model_names(paths: list[Path]) -> list[str]:
    """One unique table / JSON name per model: the file stem, ``parent/stem`` where stems clash,
    the whole path where those clash too, and ``#k`` suffixes for a path given twice."""
    stems = [p.stem for p in paths]
    names = [
        f'{p.parent.name}/{p.stem}' if stems.count(p.stem) > 1 and p.parent.name else p.stem
        for p in paths
    ]
    short = list(names)
    names = [
        str(p.with_suffix('')) if short.count(n) > 1 else n
        for p, n in zip(paths, short, strict=True)
    ]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f'{name}#{seen[name]}')
    return out


def run(args: argparse.Namespace) -> int:
    from dmil_ros.paths import input_file, output_file
    from dmil_ros.train.cli import default_cache_dir
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.evaluate import (
        comparison_table,
        evaluate_model,
        load_for_evaluation,
        model_settings,
    )

    if args.json is not None:
        output_file(args.json, '--json')
    # every model checked before any bag is read: a broken second model costs nothing
    for path in args.model:
        input_file(path, '--model')
    models = [(path, load_for_evaluation(path)) for path in args.model]
    settings = [model_settings(model) for _, model in models]
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    results = {}
    loaded: dict[str, tuple[Arrays, int, int]] = {}  # data key -> (pairs, two-scene, unconfirmed)
    names = model_names(list(args.model))
    for (path, model), (data_cfg, spec), name in zip(models, settings, names, strict=True):
        key = json.dumps([data_cfg.__dict__, spec.to_json()], sort_keys=True, default=str)
        if key not in loaded:
            arrays, stats = load_bags(list(args.bags), data_cfg, spec, cache)
            loaded[key] = (
                arrays,
                sum(s.two_scenes for s in stats),
                sum(s.unconfirmed for s in stats),
            )
        arrays, two, unconfirmed = loaded[key]
        logger.info('evaluating %s on %d pairs', path, len(arrays))
        results[name] = evaluate_model(model, arrays)
        results[name]['pairs_two_scenes'] = two
        results[name]['pairs_unconfirmed_scene'] = unconfirmed
    sys.stdout.write(comparison_table(results) + '\n')
    counts = {
        name: (m['pairs_two_scenes'], m['pairs_unconfirmed_scene']) for name, m in results.items()
    }
    if len(set(counts.values())) == 1:  # one data config: one line
        counts = {'every model': next(iter(counts.values()))}
    for name, (two, unconfirmed) in counts.items():
        if two:
            sys.stdout.write(
                f'{name}: {two} pairs span two scene segments (camera frame and LiDAR sweep from'
                ' different scenes): no family; in the overall figures, not in the per-family or'
                ' gate = family ones\n'
            )
        if unconfirmed:
            sys.stdout.write(
                f'{name}: {unconfirmed} pairs have a LiDAR sweep without usable scene truth: no'
                ' family either\n'
            )
    if args.json:
        keys = ('accuracy', 'per_family', 'synergy_indicator', 'gate_family_agreement',
                'frames', 'frames_per_family', 'accuracy_camera', 'accuracy_lidar',
                'confusion', 'mean_gates_per_family', 'pairs_two_scenes',
                'pairs_unconfirmed_scene')  # fmt: skip
        doc = {
            'bags': [str(b) for b in args.bags],
            'models': {n: {k: m.get(k) for k in keys} for n, m in results.items()},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1), encoding='utf-8')
    return 0
