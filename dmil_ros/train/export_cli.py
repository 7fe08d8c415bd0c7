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

"""``dmil-ros export RUN --out models/NAME.onnx``: one ONNX graph, checked against torch."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('run_dir', type=Path, metavar='RUN', help='training run directory')
    parser.add_argument('--out', type=Path, required=True, help='ONNX file to write')
    parser.add_argument(
        '--checkpoint',
        default='model.pt',
        help=(
            'checkpoint file in RUN, relative to RUN (default model.pt; e.g. stage1_best.pt). '
            "The metadata and card describe RUN's training: a checkpoint outside RUN, or one "
            "whose config differs from RUN/config.json (another run's), is refused; export "
            'it from its own run'
        ),
    )
    parser.add_argument(
        '--bags',
        type=Path,
        nargs='*',
        default=None,
        metavar='DIR',
        help=(
            "bags whose frames the ORT-vs-torch check (and PID fit) use (default: the run's "
            'training bags, data.json, without the validation time blocks the run held out)'
        ),
    )
    parser.add_argument('--cache', type=Path, default=None, help='decoded-tensor cache')
    parser.add_argument(
        '--card', type=Path, default=None, help='model card to write (default: --out with .md)'
    )
    parser.add_argument(
        '--eval-json',
        type=Path,
        default=None,
        help='held-out results of `dmil-ros evaluate --json` for the card',
    )
    parser.add_argument('--notes', type=Path, default=None, help='extra card text (markdown)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out, card or --report (refused without: a shipped model)',
    )
    parser.add_argument(
        '--no-pid',
        action='store_true',
        help=(
            'export without the pid_lsmi / pid_broja outputs (without it, an export that '
            'cannot fit either head stops)'
        ),
    )
    parser.add_argument(
        '--pid-frames',
        type=int,
        default=8000,
        help=(
            "at most this many frames, spread evenly, to fit the PID heads on: of the run's "
            'training frames, or of --bags when given (default 8000)'
        ),
    )
    parser.add_argument('--report', type=Path, default=None, help='report (JSON)')  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dmil_ros.errors import ConfigError
    from dmil_ros.paths import input_text, output_file
    from dmil_ros.train.card import load_evaluation, write_card
    from dmil_ros.train.checkpoint import load_model
    from dmil_ros.train.cli import default_cache_dir
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.dataset import run_split
    from dmil_ros.train.errors import ExportError
    from dmil_ros.train.export import check_finite, export_onnx
    from dmil_ros.train.rundir import (
        check_checkpoint,
        fit_frames,
        run_checkpoint,
        training_summary,
    )

    # every path and the card's inputs checked before the (minutes of) fitting and export
    output_file(args.out, '--out')
    card = output_file(args.card or args.out.with_suffix('.md'), '--card')
    if args.report is not None:
        output_file(args.report, '--report')
    present = [str(p) for p in (args.out, card, args.report) if p is not None and p.exists()]
    if present and not args.overwrite:
        # every other writer refuses too: one `--out models/dmil_hallway.onnx` would have
        # replaced the shipped model and its card without a word (review 22d #8)
        msg = f'export: {present} already exist; pass --overwrite to replace them'
        raise ConfigError(msg)
    if args.pid_frames < 1:
        msg = f'--pid-frames {args.pid_frames!r} must be >= 1'
        raise ConfigError(msg)
    evaluation = None
    if args.eval_json:
        text = input_text(args.eval_json, '--eval-json')
        evaluation = load_evaluation(text, f'--eval-json {str(args.eval_json)!r}')
    notes = input_text(args.notes, '--notes') if args.notes else ''
    ckpt, name = run_checkpoint(args.run_dir, args.checkpoint)
    model, config, _ = load_model(ckpt)
    training = training_summary(args.run_dir)
    check_checkpoint(args.run_dir, name, config, training)
    training['checkpoint'] = name
    # validation frames with a scene family: the bags carry the simulator's ground truth
    families = (training.get('val') or {}).get('per_family') or {}
    training['simulator_truth'] = any(v is not None for v in families.values())
    if name != 'model.pt':  # summary.json's metrics are model.pt's, not this one's
        training.pop('val', None)
    sample = None
    heads = None
    fit = fit_frames(args.run_dir, list(args.bags or []), pid=not args.no_pid)
    bags, frames = fit.bags, fit.label  # frames: what the check and the PID fit ran on
    if not bags and not args.no_pid:
        msg = (
            f'export {str(args.out)!r}: no bags to fit the PID heads (pid_lsmi, pid_broja: the '
            "node's synergy alarm) on: neither --bags nor the run's data.json names any; pass "
            'them with --bags, or export without the heads (--no-pid)'
        )
        raise ExportError(msg)
    if bags:
        data, _ = load_bags(bags, config.data, config.preprocess,
                            args.cache or default_cache_dir())  # fmt: skip
        if fit.held_out:
            data, _ = run_split(data, config.data)
        pick = np.linspace(0, len(data) - 1, min(len(data), args.pid_frames)).astype(np.int64)
        data = data.subset(pick)
        sample = (
            data.image[:: max(1, len(data) // 64)][:64],
            data.lidar[:: max(1, len(data) // 64)][:64],
        )
        if not args.no_pid:
            from dmil_ros.train.pid_heads import fit_pid_heads
            from dmil_ros.train.trainer import predict

            torch.set_num_threads(config.schedule.threads)
            out = predict(model, torch.from_numpy(data.image), torch.from_numpy(data.lidar))
            # a diverged checkpoint's NaN features would fail deep in the fit (an SVD)
            check_finite(args.out, 'torch', out, f'{len(data)} PID fitting frames')
            try:
                heads, pid_summary = fit_pid_heads(out, data.action)
            except ExportError as exc:
                msg = (
                    f'export {str(args.out)!r}: {exc}; fit them on other frames (--bags), or '
                    "export without them (--no-pid: the node's synergy alarm then has no input)"
                )
                raise ExportError(msg) from exc
            for head, reason in pid_summary.get('not_fitted', {}).items():
                logger.warning(
                    'export %s: %s not fitted on %s (%s): exporting with %s only',
                    args.out, head, frames, reason, ', '.join(heads),
                )  # fmt: skip
            training = {**training, 'pid': {**pid_summary, 'fit_on': frames}}
            logger.info('PID heads fitted on %d frames: %s', len(data), pid_summary)
    report = export_onnx(
        model, config, args.out, training, sample=sample, pid_heads=heads, sample_name=frames
    )
    write_card(card, config.to_dict(), training, report, evaluation=evaluation, notes=notes)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1), encoding='utf-8')
    logger.info(
        'wrote %s (%d bytes): onnx.checker ok, max |onnxruntime - torch| = %.3g over %d frames',
        args.out, report['bytes'], report['max_abs_diff'], report['batch'],
    )  # fmt: skip
    return 0
