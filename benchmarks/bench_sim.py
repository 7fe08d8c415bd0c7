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

"""Simulator speed at the default sizes (128x96 rgb8 camera, 16 x 360 LiDAR), one core.

Target (issue 5): >= 200 frames/s of camera + LiDAR generation on one core. A "frame" here is
one camera image plus one full LiDAR sweep rendered at the same instant (``Simulator.frames``),
which is twice the LiDAR work of a real 20 Hz / 10 Hz drive (``Simulator.events``).

Times are process CPU seconds (numpy runs single-threaded here: the BLAS/OpenMP pools are
pinned to one thread before numpy loads), so other jobs on the machine do not inflate them;
wall-clock figures are printed alongside. Also measured: writing the bag (CDR + mcap), and the
library alternative for the LiDAR rays, Open3D's RaycastingScene (Embree BVH) on the same scene,
against which the numpy 2-D cast (which also yields the surface ids for intensities) is kept.

Run: python benchmarks/bench_sim.py [--frames 400]
"""

from __future__ import annotations

import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dmil_ros.actions import FAMILIES  # noqa: E402
from dmil_ros.sim import SimConfig, Simulator, record_bag  # noqa: E402
from dmil_ros.sim.render import NoisePool, render_camera, render_lidar  # noqa: E402
from dmil_ros.sim.scene import CEILING_M, Scene, build_scene  # noqa: E402

TARGET_FPS = 200.0


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(cpu seconds, wall seconds) per call."""
    fn()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.process_time() - c0) / repeat, (time.perf_counter() - w0) / repeat


def scenes() -> list[Scene]:
    rng = np.random.default_rng(0)
    out = []
    for fam in FAMILIES:
        for k in range(4):
            c, lat = (
                (k % 2, (k // 2) % 2)
                if fam == 'S'
                else (k % 2, k)
                if fam == 'U_lidar'
                else ((k, k % 2) if fam == 'U_camera' else (k, k))
            )
            out.append(build_scene(fam, c, lat, rng))
    return out


def open3d_lidar(scene: Scene, sim: Simulator, repeat: int) -> tuple[float, float] | None:
    try:
        import open3d as o3d
    except ImportError:
        return None
    verts: list[tuple[float, float, float]] = []
    tris: list[tuple[int, int, int]] = []

    def quad(*corners: tuple[float, float, float]) -> None:
        i = len(verts)
        verts.extend(corners)
        tris.extend([(i, i + 1, i + 2), (i, i + 2, i + 3)])

    for p0, p1, h in zip(scene.walls.p0, scene.walls.p1, scene.walls.height, strict=True):
        quad((p0[0], p0[1], 0.0), (p1[0], p1[1], 0.0), (p1[0], p1[1], h), (p0[0], p0[1], h))
    for z in (0.0, CEILING_M):
        quad((-50, -50, z), (50, -50, z), (50, 50, z), (-50, 50, z))
    rs = o3d.t.geometry.RaycastingScene()
    rs.add_triangles(
        o3d.core.Tensor(np.asarray(verts, np.float32)),
        o3d.core.Tensor(np.asarray(tris, np.uint32)),
    )
    lid = sim.lidar
    el, az = np.meshgrid(lid.elevation, lid.azimuth, indexing='ij')
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    origin = np.tile([0.0, 0.0, lid.mount_height], (d.size // 3, 1))
    rays = o3d.core.Tensor(np.concatenate([origin, d.reshape(-1, 3)], 1).astype(np.float32))

    def cast() -> object:
        return rs.cast_rays(rays)['t_hit'].numpy()

    return timed(cast, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=400)
    args = parser.parse_args()
    cfg = SimConfig(frames=args.frames, seed=1)
    sim = Simulator(cfg)
    print(
        f'bench_sim: camera {cfg.width}x{cfg.height} rgb8, LiDAR {cfg.beams}x{cfg.azimuth_steps}'
    )
    # 1. renderers alone, averaged over scenes of every family
    rng = np.random.default_rng(0)
    pool = NoisePool.create(rng)
    pose = (-0.2, 0.02, 0.01)
    all_scenes = scenes()
    cam = [
        timed(lambda s=s: render_camera(s, pose, sim.camera, rng, pool), 30) for s in all_scenes
    ]
    lid = [timed(lambda s=s: render_lidar(s, pose, sim.lidar, rng, pool), 30) for s in all_scenes]
    cam_cpu, lid_cpu = float(np.mean([c for c, _ in cam])), float(np.mean([c for c, _ in lid]))
    print(f'  camera render              {cam_cpu * 1e3:7.3f} ms/image (cpu)')
    print(f'  LiDAR sweep (numpy 2-D)    {lid_cpu * 1e3:7.3f} ms/sweep (cpu)')
    o3d_t = open3d_lidar(all_scenes[-1], sim, 50)
    if o3d_t is not None:
        print(
            f'  LiDAR rays only (Open3D)   {o3d_t[0] * 1e3:7.3f} ms/sweep (cpu, all threads; '
            f'numpy sweep / Open3D rays = {lid_cpu / o3d_t[0]:.2f})'
        )
    # 2. the in-memory API end to end
    for name in ('frames', 'events'):
        s = Simulator(cfg)
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in getattr(s, name)():
            pass
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        what = 'image + sweep per frame' if name == 'frames' else 'real rates, sweep per 2'
        print(
            f'  Simulator.{name:<8} ({what}) {cfg.frames / cpu:7.1f} frames/s cpu, '
            f'{cfg.frames / wall:7.1f} wall; ratio to target {TARGET_FPS:.0f}: '
            f'{cfg.frames / cpu / TARGET_FPS:.2f}'
        )
    # 3. recording (CDR serialisation + mcap), uncompressed and zstd, after one untimed
    #    warm-up recording (the first call pays for imports and caches: 'none' looked 2x slower)
    with tempfile.TemporaryDirectory() as tmp:
        record_bag(replace(cfg, frames=min(cfg.frames, 20)), Path(tmp) / 'warm')
    for comp in ('none', 'zstd'):
        with tempfile.TemporaryDirectory() as tmp:
            c0, w0 = time.process_time(), time.perf_counter()
            record_bag(cfg, Path(tmp) / 'bag', compression=comp)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            size = sum(f.stat().st_size for f in (Path(tmp) / 'bag').iterdir())
        print(
            f'  record_bag mcap ({comp:<4})    {cfg.frames / cpu:7.1f} frames/s cpu, '
            f'{cfg.frames / wall:7.1f} wall, {size / cfg.frames / 1e3:6.1f} kB/frame'
        )


if __name__ == '__main__':
    main()
