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

"""``dmil-ros simulate``: record a simulated camera + LiDAR bag with ground truth."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--out',
        required=True,
        help='output bag directory (must not exist; missing parent folders are created)',
    )
    parser.add_argument('--frames', type=int, default=600, help='camera frames (20 Hz; 600)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--mix',
        default='R=1,U_camera=1,U_lidar=1,S=1',
        help='family weights, e.g. R=0.4,U_camera=0.2,U_lidar=0.2,S=0.2 (normalised)',
    )
    parser.add_argument(
        '--storage', choices=('mcap', 'sqlite3'), default='mcap', help='rosbag2 storage plugin'
    )
    parser.add_argument(
        '--compression',
        choices=('none', 'zstd'),
        default='none',
        help='MCAP chunk compression (default: none)',
    )
    parser.add_argument('--width', type=int, default=128, help='image width (default: 128)')
    parser.add_argument('--height', type=int, default=96, help='image height (default: 96)')
    parser.add_argument(
        '--segment-frames',
        default='20,60',
        metavar='MIN,MAX',
        help='camera frames per scene segment (default: 20,60)',
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from dmil_ros.paths import output_dir
    from dmil_ros.sim.config import SimConfig, parse_mix
    from dmil_ros.sim.errors import SimConfigError
    from dmil_ros.sim.record import record_bag

    output_dir(args.out, '--out', new=True)  # as replay's: checked before any work
    if args.frames <= 0:
        msg = f'--frames {args.frames}: must be > 0'
        raise SimConfigError(msg)
    lo, sep, hi = args.segment_frames.partition(',')
    try:
        segment_frames = (int(lo), int(hi if sep else lo))
    except ValueError:
        msg = f'--segment-frames {args.segment_frames!r}: expected MIN,MAX integers'
        raise SimConfigError(msg) from None
    config = SimConfig(
        frames=args.frames,
        seed=args.seed,
        mix=parse_mix(args.mix),
        width=args.width,
        height=args.height,
        segment_frames=segment_frames,
    )
    result = record_bag(
        config,
        args.out,
        storage=args.storage,
        compression=args.compression,
        progress=not args.no_progress,
    )
    truth = result.ground_truth
    pids = [('design of the mix', truth['mix_pid'])]
    if 'empirical' in truth:  # what an audit of this bag's frames is compared with
        pids.append(('recorded frames', truth['empirical']['pid']))
    for what, pid in pids:
        logger.info(
            'ground-truth PID, %s (bits): R %.3f  U_camera %.3f  U_lidar %.3f  S %.3f',
            what,
            pid['redundancy'],
            pid['unique_camera'],
            pid['unique_lidar'],
            pid['synergy'],
        )
    return 0
