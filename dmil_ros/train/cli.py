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

from dmil_ros.model.config import KINDS
from dmil_ros.paths import output_dir

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
    parser.add_argument(
        '--config',
        type=Path,
        default=None,
        help="training config (JSON; with --resume: the run's own config.json)",
    )
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


def run(args: argparse.Namespace) -> int:
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.dataset import run_split
    from dmil_ros.train.rundir import (
        check_bags,
        check_out,
        check_recordings,
        run_config,
        write_run_files,
    )
    from dmil_ros.train.trainer import check_sets, train

    # every check on the run directory and the config before the bags are read
    output_dir(args.out, '--out')
    check_out(args.out, resume=args.resume, overwrite=args.overwrite)
    check_bags(args.out, list(args.bags), list(args.val_bags or []), resume=args.resume)
    config = run_config(args.out, args.config, args.model, resume=args.resume)
    cache = None if args.no_cache else (args.cache or default_cache_dir())
    show = not args.no_progress
    # digest: data.json keeps each bag's pairs digest, which a resume checks
    read = {'progress': show, 'digest': True}
    data, stats = load_bags(list(args.bags), config.data, config.preprocess, cache, **read)
    if args.val_bags:
        train_set = data
        val_set, vstats = load_bags(
            list(args.val_bags), config.data, config.preprocess, cache, **read
        )
        stats += vstats
    else:
        train_set, val_set = run_split(data, config.data)
    logger.info('%d training / %d validation pairs', len(train_set), len(val_set))
    # the checks that need the frames, before the run's files are written: a refused command
    # leaves the run as it was
    if args.resume:
        check_recordings(args.out, stats)
    check_sets(train_set, val_set, args.out)
    write_run_files(
        args.out, config.to_json(), list(args.bags), list(args.val_bags or []), stats,
        resume=args.resume,
    )  # fmt: skip
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
