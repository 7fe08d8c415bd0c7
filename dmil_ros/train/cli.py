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

"""``dmil-ros train``: train DMIL (or a baseline) from rosbag2 recordings."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from dmil_ros.model.config import KINDS
from dmil_ros.paths import output_dir
from dmil_ros.train.errors import TrainConfigError

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'dmil_ros' / 'train'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--bags',
        type=Path,
        nargs='+',
        required=True,
        metavar='DIR',
        help='training bags (rosbag2 directories)',
    )
    parser.add_argument(
        '--val-bags',
        type=Path,
        nargs='*',
        default=None,
        metavar='DIR',
        help='validation bags (default: time blocks of the training bags)',
    )
    parser.add_argument('--out', type=Path, required=True, help='run directory')
    parser.add_argument('--config', type=Path, default=None, help='training config (JSON)')
    parser.add_argument(
        '--model',
        choices=KINDS,
        default=None,
        help='model kind (overrides the config; default dmil)',
    )
    parser.add_argument(
        '--cache',
        type=Path,
        default=None,
        help=f'decoded-tensor cache (default {default_cache_dir()})',
    )
    parser.add_argument('--no-cache', action='store_true', help='do not read or write the cache')
    parser.add_argument('--resume', action='store_true', help='continue from RUN/last.pt')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an earlier run in --out (its checkpoints, summary and TensorBoard events)',
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')  # fmt: skip


def check_bags(out: Path, bags: list[Path], val_bags: list[Path], *, resume: bool) -> None:
    """Refuse validation bags that are training bags, and a resume on other bags than the
    run's (its checkpoints were trained on those), before any bag is read."""
    train_set, val_set = ([Path(b).resolve() for b in group] for group in (bags, val_bags))
    shared = [str(b) for b in val_set if b in train_set]
    if shared:
        msg = f'--val-bags {shared} are also --bags: validation would score training frames'
        raise TrainConfigError(msg)
    recorded = out / 'data.json'
    if not (resume and recorded.is_file()):
        return
    data = json.loads(recorded.read_text(encoding='utf-8'))
    # runs before absolute paths stored them as typed: resolved from here, as typed
    was = [[Path(b).resolve() for b in data.get(key, [])] for key in ('bags', 'val_bags')]
    if was != [train_set, val_set]:
        msg = (
            f'resume {str(out)!r}: the run was trained on --bags {data.get("bags")} '
            f'--val-bags {data.get("val_bags")}; resume it on the same bags'
        )
        raise TrainConfigError(msg)


def write_data_json(args: argparse.Namespace, stats: list[Any]) -> None:
    """The run's bags (absolute: the export finds them from any directory) and their stats."""
    (args.out / 'data.json').write_text(
        json.dumps(
            {
                'bags': [str(Path(b).resolve()) for b in args.bags],
                'val_bags': [str(Path(b).resolve()) for b in args.val_bags or []],
                'stats': [s.to_dict() for s in stats],
            },
            indent=1,
        ),
        encoding='utf-8',
    )


def run(args: argparse.Namespace) -> int:
    from dmil_ros.train.config import TrainConfig
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.dataset import time_block_split
    from dmil_ros.train.trainer import check_out, train

    output_dir(args.out, '--out')
    check_out(args.out, resume=args.resume, overwrite=args.overwrite)  # before the bags are read
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.model:
        config = config.with_kind(args.model)
    check_bags(args.out, list(args.bags), list(args.val_bags or []), resume=args.resume)
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    show = not args.no_progress
    data, stats = load_bags(list(args.bags), config.data, config.preprocess, cache, progress=show)
    if args.val_bags:
        train_set = data
        val_set, vstats = load_bags(
            list(args.val_bags), config.data, config.preprocess, cache, progress=show
        )
        stats += vstats
    else:
        tr, va = time_block_split(data, config.data.val_fraction, config.data.block_seconds)
        train_set, val_set = data.subset(tr), data.subset(va)
    logger.info('%d training / %d validation pairs', len(train_set), len(val_set))
    args.out.mkdir(parents=True, exist_ok=True)
    # a resumed run keeps the files it started with (the trainer refuses another config)
    if not (args.resume and (args.out / 'config.json').is_file()):
        (args.out / 'config.json').write_text(config.to_json(), encoding='utf-8')
    if not (args.resume and (args.out / 'data.json').is_file()):
        write_data_json(args, stats)
    summary = train(
        config, train_set, val_set, args.out, resume=args.resume, progress=not args.no_progress
    )
    summary['bags'] = [Path(b).name for b in args.bags]
    summary['val_bags'] = [Path(b).name for b in args.val_bags or []]
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1), encoding='utf-8')
    val = summary['val']
    logger.info(
        '%s: %.1f s, validation accuracy %s, per family %s, synergy indicator %s, gate/family %s',
        config.model.kind, summary['train_seconds'], val['accuracy'], val['per_family'],
        val['synergy_indicator'], val['gate_family_agreement'],
    )  # fmt: skip
    return 0
