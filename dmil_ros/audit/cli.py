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

"""``dmil-ros audit BAG [BAG...] --out DIR [--model M.onnx] [--workers N]``.

Writes ``frames.parquet`` / ``frames.csv`` (one row per frame), ``summary.json`` (data-level and
model-level PID, spikes, per-action breakdown, ground truth when the bags carry it) and
``report.html`` (self-contained) to ``DIR``; per-bag results go to ``DIR/bags/<name>/`` as each
bag finishes, and a rerun skips finished bags.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _default_model() -> str:
    from dmil_ros.runtime.params import default_model_path  # light: no onnxruntime import

    return str(default_model_path())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', metavar='BAG', help='bags, or directories of bags')
    parser.add_argument('--out', required=True, type=Path, metavar='DIR', help='output directory')
    parser.add_argument(
        '--model',
        default=None,
        help='ONNX model to audit (default: the shipped model, $DMIL_ROS_MODEL or '
        "share/dmil_ros/models/dmil_hallway.onnx or the checkout's models/)",
    )
    parser.add_argument(
        '--workers', type=int, default=0, help='parallel bags (default: one per CPU core)'
    )
    parser.add_argument(
        '--engine',
        choices=('process', 'ray'),
        default='process',
        help='process pool on this machine (default) or a Ray cluster',
    )
    parser.add_argument('--camera-topic', default='/camera/image_raw')
    parser.add_argument('--lidar-topic', default='/lidar/points')
    parser.add_argument('--batch', type=int, default=64, help='frames per inference batch')
    parser.add_argument(
        '--mask-samples',
        type=int,
        default=1,
        help='noise draws per frame for calibrated masking (models without unimodal heads)',
    )
    parser.add_argument(
        '--clusters',
        type=int,
        default=0,
        help='k-means clusters per modality for CVX PID (default 0: plug-in bias rule, <= 30)',
    )
    parser.add_argument('--spike-high', type=float, default=0.3, help='spike start, bits')
    parser.add_argument('--spike-low', type=float, default=0.15, help='spike continuation, bits')
    parser.add_argument('--max-frames', type=int, default=0, help='frames per bag (0: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-resume', action='store_true', help='redo finished bags')
    parser.add_argument('--no-report', action='store_true', help='skip report.html')


def run(args: argparse.Namespace) -> int:
    from dmil_ros.audit.bagaudit import BagOptions
    from dmil_ros.audit.errors import AuditError
    from dmil_ros.audit.merge import MergeOptions
    from dmil_ros.audit.runner import AuditOptions, run_audit
    from dmil_ros.audit.spikes import SpikeConfig
    from dmil_ros.audit.terms import TermsConfig
    from dmil_ros.paths import input_file, output_dir

    if args.model is None:
        args.model = _default_model()
    input_file(args.model, '--model')
    output_dir(args.out, '--out')
    if args.clusters < 0 or args.clusters == 1:  # 0 is the CLI's "choose" (n_clusters None)
        msg = f'--clusters {args.clusters!r} must be 0 (the bias rule) or >= 2'
        raise AuditError(msg)
    options = AuditOptions(  # each option's range checked where it is defined
        bag=BagOptions(
            model=str(args.model),
            camera_topic=args.camera_topic,
            lidar_topic=args.lidar_topic,
            batch=args.batch,
            mask_samples=args.mask_samples,
            seed=args.seed,
            max_frames=args.max_frames,
        ),
        merge=MergeOptions(
            terms=TermsConfig(seed=args.seed),
            spikes=SpikeConfig(high=args.spike_high, low=args.spike_low),
            n_clusters=args.clusters or None,
            seed=args.seed,
        ),
        workers=args.workers,
        engine=args.engine,
        resume=not args.no_resume,
        report=not args.no_report,
    )
    summary = run_audit(args.bags, args.out, options)
    frames = summary['frames']
    logger.info(
        'audit: %d frames from %d bags (%d failed), %d spikes -> %s',
        frames['total'],
        len(summary['bags']),
        frames['failed_bags'],
        len(summary['spikes']),
        args.out,
    )
    for err in summary['errors'][:10]:
        logger.warning('bag %s: %s', err.get('bag'), err.get('message'))
    for text in summary['warnings']:  # e.g. a dataset-level PID from too few scenes
        logger.warning('%s', text)
    # 1: the summary is written, but a bag gave nothing (what a script running audits checks)
    return 1 if frames['failed_bags'] else 0
