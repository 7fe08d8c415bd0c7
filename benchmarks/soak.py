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

"""Soak test: the fusion pipeline fed simulated sensor streams at real rate for a long time.

    python benchmarks/soak.py [--duration 600] [--warmup 60] [--sample 10] [--model M | --tiny]
                              [--pool 20] [--json OUT]

The simulator's 20 Hz camera (128x96 rgb8) and 10 Hz VLP-16-like PointCloud2 are rendered into
a pool of ``--pool`` seconds, then replayed in a loop with fresh, monotonically increasing header
stamps, each message handed to :class:`~dmil_ros.runtime.pipeline.FusionPipeline` at its due
wall-clock time (``--pool 0`` renders every message on the fly instead). Batch 1, as in the node.

Every ``--sample`` seconds it prints: RSS (``/proc/self/statm``), processing latency p50/p99
(decode + preprocess + inference + monitor of each frame), end-to-end latency p50/p99 (from the
camera message's arrival to its result: includes waiting for the LiDAR partner), the deepest
pairing queues seen, cumulative drops, frames, and how late the feeder was.

Targets (issue 9), reported as ratios measured in this run:

* RSS after warm-up grows < 5 %: ``rss_end / rss_after_warmup`` < 1.05;
* queues stay bounded: deepest camera / LiDAR queue <= ``queue_size``;
* p99 latency at the end within 20 % of the start: ``p99(last 20 %) / p99(first 20 % after
  warm-up)`` <= 1.2 (processing latency; end-to-end is printed beside it);
* no crash, and no drops in steady state (clean streams).

Model: ``--model`` (default ``models/dmil_hallway.onnx``); when missing, an untrained DMIL of
the default architecture is exported as a stand-in (same graph, same cost; needs torch), or with
``--tiny`` the tests' tiny contract model (no torch; what the 30 s CI version uses).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmil_ros.runtime.faults import restamp, stamp_ns  # noqa: E402
from dmil_ros.runtime.model import FusionModel  # noqa: E402
from dmil_ros.runtime.pipeline import FusionPipeline, PipelineConfig  # noqa: E402
from dmil_ros.sim import CameraFrame, SimConfig, Simulator, messages  # noqa: E402

CAM, LID = '/camera/image_raw', '/lidar/points'
PAGE = os.sysconf('SC_PAGE_SIZE')
RSS_TARGET = 1.05
P99_TARGET = 1.20


def rss_bytes() -> int:
    with Path('/proc/self/statm').open() as f:
        return int(f.read().split()[1]) * PAGE


def _render(event: Any) -> tuple[str, Any]:
    if isinstance(event, CameraFrame):
        return CAM, messages.image_msg(event)
    return LID, messages.pointcloud_msg(event)


def stream(duration: float, pool_s: float, seed: int) -> Iterator[tuple[str, int, Any]]:
    """``(topic, offset_ns from start, message)`` for ``duration`` s of 20 Hz + 10 Hz sensors.

    The pool is rendered here, before the first message is due.
    """
    if pool_s <= 0:
        return _live(duration, seed)
    sim = Simulator(SimConfig(frames=max(int(pool_s * 20), 20), seed=seed))
    return _looped([_render(e) for e in sim.events()], duration)


def _live(duration: float, seed: int) -> Iterator[tuple[str, int, Any]]:
    sim = Simulator(SimConfig(frames=int(duration * 20) + 20, seed=seed))
    first = None
    for event in sim.events():
        topic, msg = _render(event)
        t = stamp_ns(msg)
        first = t if first is None else first
        if t - first > duration * 1e9:
            return
        yield topic, t - first, msg


def _looped(pool: list[tuple[str, Any]], duration: float) -> Iterator[tuple[str, int, Any]]:
    """The pool replayed in a loop, restamped so that stamps keep increasing."""
    base = stamp_ns(pool[0][1])
    period = stamp_ns(pool[-1][1]) - base + 50_000_000
    k = 0
    while True:
        for topic, msg in pool:
            offset = stamp_ns(msg) - base + k * period
            if offset > duration * 1e9:
                return
            yield topic, offset, restamp(msg, stamp_ns(msg) + k * period)
        k += 1


def load_model(args: argparse.Namespace, tmp: Path) -> FusionModel:
    path = Path(args.model)
    if args.tiny:
        from tests.runtime.contract_models import build_model

        path = build_model(tmp / 'tiny.onnx')
    elif not path.is_file():
        sys.path.insert(0, str(ROOT / 'benchmarks'))
        from bench_runtime import stand_in_model

        print(f'{path} not found: exporting an untrained DMIL stand-in')
        path = stand_in_model(tmp / 'stand_in.onnx')
    return FusionModel(path, provider=args.provider, threads=args.threads)


@dataclasses.dataclass
class Window:
    """What happened during one sampling interval."""

    t: float = 0.0
    rss: int = 0
    frames: int = 0
    processing: list[float] = dataclasses.field(default_factory=list)
    end_to_end: list[float] = dataclasses.field(default_factory=list)
    max_cam_queue: int = 0
    max_lid_queue: int = 0
    drops: int = 0
    late_max: float = 0.0

    def row(self) -> dict[str, Any]:
        def pct(v: list[float], q: float) -> float:
            return float(np.percentile(np.asarray(v) * 1e3, q)) if v else float('nan')

        return {
            't_s': round(self.t, 1),
            'rss_mb': round(self.rss / 2**20, 2),
            'frames': self.frames,
            'proc_p50_ms': round(pct(self.processing, 50), 3),
            'proc_p99_ms': round(pct(self.processing, 99), 3),
            'e2e_p50_ms': round(pct(self.end_to_end, 50), 3),
            'e2e_p99_ms': round(pct(self.end_to_end, 99), 3),
            'cam_queue_max': self.max_cam_queue,
            'lidar_queue_max': self.max_lid_queue,
            'drops_total': self.drops,
            'feeder_late_max_ms': round(self.late_max * 1e3, 2),
        }


def soak(args: argparse.Namespace, model: FusionModel) -> dict[str, Any]:
    pipeline = FusionPipeline(model, PipelineConfig(queue_size=args.queue_size))
    arrival: dict[int, float] = {}  # camera stamp -> arrival wall time (pending frames only)
    windows: list[Window] = []
    win = Window()
    crashes = 0
    all_processing: list[tuple[float, float]] = []  # (t, s)
    source = stream(args.duration, args.pool, args.seed)
    t_start = time.perf_counter()
    next_sample = args.sample
    header = (
        f'{"t_s":>7} {"rss_mb":>8} {"frames":>6} {"proc_p50":>9} {"proc_p99":>9} '
        f'{"e2e_p50":>9} {"e2e_p99":>9} {"camQ":>5} {"lidQ":>5} {"drops":>6} {"late_ms":>8}'
    )
    print(header)
    for topic, offset_ns, msg in source:
        due = t_start + offset_ns / 1e9
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        arrived = time.perf_counter()
        win.late_max = max(win.late_max, arrived - due)
        try:
            if topic == CAM:
                arrival[stamp_ns(msg)] = arrived
                results = pipeline.push_camera(msg)
            else:
                results = pipeline.push_lidar(msg)
        except Exception as exc:  # a soak counts crashes rather than stopping
            crashes += 1
            print(f'CRASH at {arrived - t_start:.1f} s: {exc!r}')
            continue
        done = time.perf_counter()
        for r in results:
            win.frames += 1
            win.processing.append(r.timings['total'])
            all_processing.append((done - t_start, r.timings['total']))
            t_arr = arrival.pop(r.header.ns, None)
            if t_arr is not None:
                win.end_to_end.append(done - t_arr)
        if len(arrival) > 4 * args.queue_size:  # frames dropped by pairing never return
            for stamp in sorted(arrival)[: len(arrival) - 2 * args.queue_size]:
                del arrival[stamp]
        win.max_cam_queue = max(win.max_cam_queue, pipeline.pairer.pending_camera)
        win.max_lid_queue = max(win.max_lid_queue, pipeline.pairer.pending_lidar)
        if done - t_start >= next_sample:
            win.t = done - t_start
            win.rss = rss_bytes()
            win.drops = sum(pipeline.drops.values())
            windows.append(win)
            row = win.row()
            print(
                f'{row["t_s"]:7.1f} {row["rss_mb"]:8.2f} {row["frames"]:6d} '
                f'{row["proc_p50_ms"]:9.3f} {row["proc_p99_ms"]:9.3f} {row["e2e_p50_ms"]:9.3f} '
                f'{row["e2e_p99_ms"]:9.3f} {row["cam_queue_max"]:5d} {row["lidar_queue_max"]:5d} '
                f'{row["drops_total"]:6d} {row["feeder_late_max_ms"]:8.2f}',
                flush=True,
            )
            win = Window()
            next_sample += args.sample
    wall = time.perf_counter() - t_start
    return summarise(
        args, pipeline, windows=windows, processing=all_processing, crashes=crashes, wall=wall
    )


def summarise(
    args: argparse.Namespace,
    pipeline: FusionPipeline,
    *,
    windows: list[Window],
    processing: list[tuple[float, float]],
    crashes: int,
    wall: float,
) -> dict[str, Any]:
    rows = [w.row() for w in windows]
    after = [w for w in windows if w.t >= args.warmup]
    rss_warm = after[0].rss if after else float('nan')
    rss_end = windows[-1].rss if windows else float('nan')
    # p99 of the first and last 20 % of the post-warm-up time span (processing latency)
    span = args.duration - args.warmup
    first = [s for t, s in processing if args.warmup <= t < args.warmup + 0.2 * span]
    last = [s for t, s in processing if t >= args.duration - 0.2 * span]
    e2e_first = [x for w in after if w.t <= args.warmup + 0.2 * span + args.sample
                 for x in w.end_to_end]  # fmt: skip
    e2e_last = [x for w in after if w.t > args.duration - 0.2 * span for x in w.end_to_end]

    def p99(v: list[float]) -> float:
        return float(np.percentile(v, 99)) * 1e3 if v else float('nan')

    max_cam = max((w.max_cam_queue for w in windows), default=0)
    max_lid = max((w.max_lid_queue for w in windows), default=0)
    steady_drops = (windows[-1].drops - after[0].drops) if after else 0
    ratios = {
        'rss_growth': rss_end / rss_warm,
        'p99_end_over_start': p99(last) / p99(first),
        'e2e_p99_end_over_start': p99(e2e_last) / p99(e2e_first),
        'camera_queue_max_over_bound': max_cam / args.queue_size,
        'lidar_queue_max_over_bound': max_lid / args.queue_size,
    }
    checks = {
        'rss_growth < 1.05': ratios['rss_growth'] < RSS_TARGET,
        'p99_end_over_start <= 1.20': ratios['p99_end_over_start'] <= P99_TARGET,
        'queues bounded': max_cam <= args.queue_size and max_lid <= args.queue_size,
        'no crash': crashes == 0,
        'no steady-state drops': steady_drops == 0,
    }
    return {
        'duration_s': args.duration,
        'wall_s': wall,
        'warmup_s': args.warmup,
        'provider': pipeline.model.provider,
        'model': pipeline.model.path,
        'frames': pipeline.frames,
        'frames_per_s': pipeline.frames / wall,
        'received': dict(pipeline.received),
        'drops': dict(pipeline.drops),
        'degraded_frames': pipeline.degraded_frames,
        'crashes': crashes,
        'rss_mb_after_warmup': rss_warm / 2**20,
        'rss_mb_end': rss_end / 2**20,
        'p99_ms_start': p99(first),
        'p99_ms_end': p99(last),
        'e2e_p99_ms_start': p99(e2e_first),
        'e2e_p99_ms_end': p99(e2e_last),
        'queue_size': args.queue_size,
        'ratios': ratios,
        'checks': checks,
        'samples': rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--duration', type=float, default=600.0, help='seconds (default 600)')
    parser.add_argument('--warmup', type=float, default=None, help='s (default 10 %%, >= 5)')
    parser.add_argument('--sample', type=float, default=None, help='s between samples')
    parser.add_argument('--model', default=str(ROOT / 'models' / 'dmil_hallway.onnx'))
    parser.add_argument('--tiny', action='store_true', help='tiny contract model (no torch)')
    parser.add_argument('--provider', default='cpu', choices=('auto', 'cpu', 'cuda', 'tensorrt'))
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--queue-size', type=int, default=PipelineConfig().queue_size)
    parser.add_argument('--pool', type=float, default=20.0, help='s of rendered streams (0: live)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', type=Path, default=None, help='write the report here')
    args = parser.parse_args(argv)
    if not args.duration > 0:
        parser.error('--duration must be positive')
    args.warmup = max(5.0, 0.1 * args.duration) if args.warmup is None else args.warmup
    args.sample = max(1.0, args.duration / 60) if args.sample is None else args.sample
    if not 0 <= args.warmup < args.duration:
        parser.error('--warmup must lie in [0, duration)')
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(args, Path(tmp))
        print(
            f'soak: {args.duration:.0f} s at real rate (20 Hz camera, 10 Hz LiDAR), model '
            f'{model.path} on {model.provider}, warm-up {args.warmup:.0f} s'
        )
        report = soak(args, model)
    print()
    print(
        f'frames {report["frames"]} ({report["frames_per_s"]:.1f}/s), crashes '
        f'{report["crashes"]}, drops {report["drops"] or "none"}, '
        f'degraded {report["degraded_frames"]}'
    )
    print(
        f'RSS {report["rss_mb_after_warmup"]:.1f} MB after warm-up -> '
        f'{report["rss_mb_end"]:.1f} MB at the end'
    )
    print(
        f'processing p99 {report["p99_ms_start"]:.3f} ms (start) -> {report["p99_ms_end"]:.3f} ms '
        f'(end); end-to-end p99 {report["e2e_p99_ms_start"]:.2f} -> '
        f'{report["e2e_p99_ms_end"]:.2f} ms'
    )
    for name, value in report['ratios'].items():
        print(f'  ratio {name:<30} {value:.3f}')
    for name, ok in report['checks'].items():
        print(f'  {"PASS" if ok else "FAIL"}  {name}')
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0 if all(report['checks'].values()) else 1


if __name__ == '__main__':
    raise SystemExit(main())
