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
    parser.add_argument('--checkpoint', default='model.pt', help='checkpoint in RUN')
    parser.add_argument(
        '--bags',
        type=Path,
        nargs='*',
        default=None,
        metavar='DIR',
        help='bags whose frames the ORT-vs-torch check (and PID fit) use',
    )
    parser.add_argument('--cache', type=Path, default=None, help='decoded-tensor cache')
    parser.add_argument('--report', type=Path, default=None, help='report (JSON)')  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from dmil_ros.train.checkpoint import load_model
    from dmil_ros.train.cli import default_cache_dir
    from dmil_ros.train.data import load_bags
    from dmil_ros.train.errors import CheckpointError
    from dmil_ros.train.export import export_onnx

    ckpt = args.run_dir / args.checkpoint
    model, config, _ = load_model(ckpt)
    summary_path = args.run_dir / 'summary.json'
    if not summary_path.is_file():
        msg = f'run {str(args.run_dir)!r}: summary.json missing (training did not finish)'
        raise CheckpointError(msg)
    training = json.loads(summary_path.read_text(encoding='utf-8'))
    sample = None
    if args.bags:
        data, _ = load_bags(list(args.bags), config.data, config.preprocess,
                            args.cache or default_cache_dir())  # fmt: skip
        sample = (data.image[:64], data.lidar[:64])
    report = export_onnx(model, config, args.out, training, sample=sample)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1), encoding='utf-8')
    logger.info(
        'wrote %s (%d bytes): onnx.checker ok, max |onnxruntime - torch| = %.3g over %d frames',
        args.out, report['bytes'], report['max_abs_diff'], report['batch'],
    )  # fmt: skip
    return 0
