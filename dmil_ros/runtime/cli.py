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

"""``dmil-ros replay BAG --out OUT_BAG``: the fusion node's pipeline over a bag, without ROS."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger('dmil_ros.replay')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='input rosbag2 (directory, .mcap or .db3)')
    parser.add_argument('--out', required=True, help='output rosbag2 directory (must not exist)')
    parser.add_argument('--model', help='ONNX model (default: the shipped dmil_hallway.onnx)')
    parser.add_argument(
        '--params', help="the node's parameters file (e.g. config/fusion.yaml) to replay with"
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument('--rate', type=float, help='pace to RATE x real time, frame by frame')
    speed.add_argument(
        '--max-speed', action='store_true', help='as fast as possible, batched (default)'
    )
    parser.add_argument('--provider', choices=('auto', 'cpu', 'cuda', 'tensorrt'))
    parser.add_argument(
        '--namespace',
        default='',
        help="the node's namespace: of the output topics and of relative input topics",
    )
    parser.add_argument(
        '--image-topic',
        help='camera topic (default camera/image_raw: /camera/image_raw, or '
        '/<namespace>/camera/image_raw with --namespace)',
    )
    parser.add_argument(
        '--points-topic',
        help='LiDAR topic (default lidar/points: /lidar/points, or /<namespace>/lidar/points)',
    )
    parser.add_argument('--pid-source', choices=('auto', 'pid_broja', 'pid_lsmi'))
    parser.add_argument('--batch', type=int, default=32, help='pairs per model call at max speed')
    parser.add_argument(
        '--threads',
        type=int,
        help='ONNX Runtime intra-op threads, 0 = one per core (default: the params value, 1)',
    )
    parser.add_argument('--cmd-vel', action='store_true', help='also write ~/cmd_vel')
    parser.add_argument(
        '--cmd-vel-stamped',
        action='store_true',
        help='write ~/cmd_vel as geometry_msgs/TwistStamped (implies --cmd-vel)',
    )
    parser.add_argument('--summary', help='write the summary as JSON to this file')
    parser.add_argument('--no-progress', action='store_true', help='no live progress line')


def run(args: argparse.Namespace) -> int:
    from dmil_ros.atomic import atomic_write_text
    from dmil_ros.errors import ConfigError
    from dmil_ros.paths import output_dir, output_file
    from dmil_ros.runtime import params
    from dmil_ros.runtime.outputs import check_namespace
    from dmil_ros.runtime.pipeline import FusionPipeline
    from dmil_ros.runtime.replay import replay

    output_dir(args.out, '--out', new=True)  # before the model loads and the bag is read
    check_namespace(args.namespace, '--namespace')
    summary_path = output_file(args.summary, '--summary') if args.summary else None
    out_dir = Path(args.out).resolve()
    if summary_path is not None and out_dir in (p := summary_path.resolve(), *p.parents):
        # the output bag's folder is created by the replay: the summary would fail at the end
        msg = f'--summary {args.summary!r}: inside or at --out {args.out!r}, the output bag'
        raise ConfigError(msg)
    values = params.load_yaml(args.params, namespace=args.namespace) if args.params else {}
    overrides = {
        'model_path': args.model,
        'provider': args.provider,
        'image_topic': args.image_topic,
        'points_topic': args.points_topic,
        'pid_source': args.pid_source,
        'threads': args.threads,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if args.cmd_vel or args.cmd_vel_stamped:
        values['publish_cmd_vel'] = True
    if args.cmd_vel_stamped:
        values['cmd_vel_stamped'] = True
    # the bag holds resolved names: a relative topic is in the node's namespace, as the node
    # in that namespace would subscribe to it
    settings = params.build(values).resolved(args.namespace)
    model = settings.load_model()
    pipeline = FusionPipeline(model, settings.pipeline)
    summary = replay(
        pipeline,
        args.bag,
        args.out,
        namespace=args.namespace,
        rate=args.rate,
        batch=args.batch,
        twists=settings.twists,
        cmd_vel_stamped=settings.cmd_vel_stamped,
        diagnostics_period=settings.diagnostics_period,
        progress=not args.no_progress,
        keep_on_interrupt=True,
        subscribed=settings.subscribed_types(),
    )
    for line in summary.lines():
        logger.info('%s', line)
    for line in summary.warnings():
        logger.warning('%s', line)
    if summary_path is not None:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(summary_path, json.dumps(summary.as_dict(), indent=2))
    if summary.interrupted:
        return 130  # as for any Ctrl-C, after the summary is written
    # 1: the output bag is written, but the input gave no frame pair, or a topic stayed silent
    # (a wrong topic name, a bag without one sensor), had no usable message (a topic of another
    # type) or is of a type the node would not subscribe to: what a script running replays
    # checks
    return 1 if summary.failed else 0
