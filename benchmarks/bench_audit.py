"""Audit speed: per-bag throughput against real time, end-to-end time, report time, BEV choice.

    python benchmarks/bench_audit.py [--bag bags/hallway_demo] [--model models/dmil_hallway.onnx]
                                     [--frames 1200] [--report-frames 10000]

Targets (issue 8): >= 100x real time on 2 CPU cores for the sample bag; report for 10k frames in
<= 10 s. Without the sample bag, a simulator bag of ``--frames`` frames is recorded; without the
model, the audit tests' tiny ONNX model (probs only: calibrated masking, 3 inferences per frame)
stands in, and the output says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'audit'))


def _bag(args: argparse.Namespace, tmp: Path) -> Path:
    if args.bag and Path(args.bag).exists():
        return Path(args.bag)
    from dmil_ros.sim import SimConfig, record_bag

    path = tmp / 'sim_drive'
    record_bag(SimConfig(frames=args.frames, seed=7), path)
    print(f'bag: simulator drive of {args.frames} frames (sample bag {args.bag!r} not found)')
    return path


def _model(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model and Path(args.model).is_file():
        return Path(args.model)
    from models import build  # tests/audit/models.py

    print(f'model: tiny test model, probs only ({args.model!r} not found)')
    return build(tmp / 'foreign.onnx')


def bench_bag(bag: Path, model: Path) -> None:
    from dmil_ros.audit.bagaudit import BagOptions, audit_bag

    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    result = audit_bag(bag, 'bench', BagOptions(model=str(model), threads=threads))
    wall = time.perf_counter() - t0
    rec = float(result.info['duration'])
    print(
        f'per-bag stage: {result.frames} frames, {rec:.1f} s recorded, {wall:.2f} s wall '
        f'({threads} threads) -> {rec / wall:.1f}x real time '
        f'[{result.frames / wall:.0f} frames/s; '
        f'inference {result.info["inference_seconds"]:.2f} s, unimodal from '
        f'{result.info["unimodal"]}]'
    )


def bench_audit(bag: Path, model: Path, tmp: Path) -> None:
    from dmil_ros.audit.bagaudit import BagOptions
    from dmil_ros.audit.runner import AuditOptions, run_audit

    out = tmp / 'audit'
    t0 = time.perf_counter()
    summary = run_audit([bag], out, AuditOptions(bag=BagOptions(model=str(model)), resume=False))
    wall = time.perf_counter() - t0
    timing = summary['timing']
    rec = timing['recorded_seconds']
    print(
        f'end-to-end audit: {summary["frames"]["total"]} frames in {wall:.2f} s '
        f'(bags {timing["bags_seconds"]:.2f} s, dataset-level merge '
        f'{timing["merge_seconds"]:.2f} s,'
        f' pictures {timing.get("report_seconds", 0):.2f} s) -> {rec / wall:.1f}x real time'
    )


def bench_report(n: int, tmp: Path) -> None:
    from dmil_ros.actions import ACTIONS, COMPONENTS
    from dmil_ros.audit.render import birds_eye, png_base64, thumbnail
    from dmil_ros.audit.report import media_wanted, write_report
    from dmil_ros.audit.spikes import find_spikes
    from dmil_ros.audit.tables import COLUMNS, build_table

    rng = np.random.default_rng(0)
    fam = np.repeat(rng.integers(0, 4, n // 40 + 1), 40)[:n]
    terms = np.eye(4)[fam] + rng.normal(0, 0.1, (n, 4))
    stamps = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 50_000_000
    cols: dict[str, object] = {c: rng.random(n) for c in COLUMNS}
    cols.update(
        bag=['drive'] * n,
        index=np.arange(n),
        stamp=stamps,
        alert=terms[:, 3] > 0.9,
        action=[ACTIONS[i] for i in rng.integers(0, 4, n)],
        label=[''] * n,
        spike=np.zeros(n, bool),
        family=['R'] * n,
        segment=np.zeros(n, int),
    )
    for k, c in enumerate(COMPONENTS):
        cols[f'model_{c}'] = terms[:, k]
    table = build_table(cols)
    t0 = time.perf_counter()
    spikes = [dict(s.as_dict(), bag='drive') for s in find_spikes(terms[:, 3], stamps)]
    summary = {
        'frames': {'total': n},
        'bags': [{'name': 'drive', 'status': 'ok', 'frames': n}],
        'spikes': spikes,
        'data_pid': dict(zip(COMPONENTS, (0.3, 0.2, 0.1, 0.4), strict=True)),
        'model_pid': dict(zip(COMPONENTS, (0.4, 0.3, 0.1, 0.1), strict=True)),
    }
    # pictures as the runner makes them (the runner's bag re-read is in the end-to-end figure)
    rgb = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    xyz = rng.normal(0, 4, (5760, 3)).astype(np.float32)
    media = {
        key: {'camera': png_base64(thumbnail(rgb)), 'bev': png_base64(birds_eye(xyz))}
        for key in media_wanted(summary, table)
    }
    write_report(tmp / 'report.html', summary, table, media)
    wall = time.perf_counter() - t0
    print(
        f'report: {n} frames, {len(spikes)} spikes, {len(media)} frames pictured in {wall:.2f} s '
        f'(target <= 10 s: {"met" if wall <= 10 else "MISSED"})'
    )


def bench_bev() -> None:
    """Bird's-eye view: numpy histogram + cv2 against open3d's voxel grid for the same cells."""
    from dmil_ros.audit.render import birds_eye

    rng = np.random.default_rng(1)
    xyz = rng.normal(0, 4, (5760, 3)).astype(np.float32)
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        birds_eye(xyz)
    ours = (time.perf_counter() - t0) / reps
    try:
        import open3d as o3d
    except ImportError:
        print(f'BEV: numpy/cv2 {ours * 1e3:.2f} ms per view (open3d not installed)')
        return
    t0 = time.perf_counter()
    for _ in range(reps):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
        grid = o3d.geometry.VoxelGrid.create_from_point_cloud(pcd, voxel_size=0.125)
        np.array([v.grid_index for v in grid.get_voxels()])
    theirs = (time.perf_counter() - t0) / reps
    print(
        f'BEV: numpy/cv2 full picture {ours * 1e3:.2f} ms vs open3d voxel grid alone '
        f'{theirs * 1e3:.2f} ms per view ({theirs / ours:.1f}x): numpy/cv2 kept'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--bag', default=str(ROOT / 'bags' / 'hallway_demo'))
    parser.add_argument('--model', default=str(ROOT / 'models' / 'dmil_hallway.onnx'))
    parser.add_argument('--frames', type=int, default=1200)
    parser.add_argument('--report-frames', type=int, default=10_000)
    args = parser.parse_args()
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    print(f'cores: {os.cpu_count()}')
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bag, model = _bag(args, tmp), _model(args, tmp)
        bench_bag(bag, model)
        bench_audit(bag, model, tmp)
        bench_report(args.report_frames, tmp)
        bench_bev()


if __name__ == '__main__':
    main()
