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

"""The fusion node's parameters: one table for the node, its YAML file and the replay CLI.

The rclpy node declares each :data:`PARAMS` entry with a ``ParameterDescriptor`` built from it;
``dmil-ros replay --params config/fusion.yaml`` reads the same file, so a replay runs with the
robot's settings. Values are checked by :func:`build`, which turns them into the pipeline's
configuration objects.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.model import PID_SOURCES, PROVIDERS, FusionModel
from dmil_ros.runtime.monitor import MonitorConfig
from dmil_ros.runtime.outputs import NODE_NAME, Twists, check_namespace, resolve
from dmil_ros.runtime.pipeline import PipelineConfig
from dmil_ros.runtime.rcl_yaml import load_tree

MODEL_FILE: Final = 'dmil_hallway.onnx'
MAX_TIMER_SECONDS: Final = 9.2e9  # rcl timers count int64 nanoseconds (2**63 ns = 9.22e9 s)
NODE: Final = NODE_NAME


@dataclass(frozen=True)
class Param:
    """One node parameter: name, default (its type is the parameter's type), description."""

    name: str
    default: bool | int | float | str
    description: str
    choices: tuple[str, ...] = ()


PARAMS: Final[tuple[Param, ...]] = (
    Param(
        'image_topic',
        'camera/image_raw',
        'camera base topic, as image_transport names it: with image_transport raw the node '
        "subscribes to it, with compressed to '<image_topic>/compressed' (a name already "
        "ending in '/compressed' is used as it is); relative names are in the node's "
        "namespace (/<ns>/camera/image_raw), a leading '/' makes it global",
    ),
    Param(
        'image_transport',
        'raw',
        'raw: subscribe to sensor_msgs/Image on image_topic; compressed: '
        'sensor_msgs/CompressedImage on image_topic/compressed',
        ('raw', 'compressed'),
    ),
    Param(
        'points_topic',
        'lidar/points',
        "LiDAR topic; relative names are in the node's namespace, a leading '/' makes it global",
    ),
    Param(
        'points_type',
        'pointcloud2',
        'message type on points_topic: sensor_msgs/PointCloud2 or sensor_msgs/LaserScan',
        ('pointcloud2', 'laserscan'),
    ),
    Param('model_path', '', f'ONNX model; empty = the shipped models/{MODEL_FILE}'),
    Param(
        'provider', 'auto', 'ONNX Runtime provider (auto = CUDA if usable, else CPU)', PROVIDERS
    ),
    Param('threads', 1, 'ONNX Runtime intra-op threads (0 = one per core)'),
    Param(
        'cuda_graphs',
        True,
        'on CUDA, replay each batch size as a captured CUDA graph (off: launch kernel by kernel)',
    ),
    Param('slop', 0.05, 'max |t_camera - t_lidar| of a pair, seconds'),
    Param(
        'queue_size',
        30,
        'per-sensor queue before pairing, and in the node before inference (oldest dropped)',
    ),
    Param(
        'silence_timeout',
        0.5,
        "seconds a sensor's newest stamp may trail the other's before degraded mode (above the "
        'LiDAR period plus its delivery delay); also the longest a message waits',
    ),
    Param(
        'pid_source',
        'auto',
        'PID head published on ~/interactions and read by the synergy monitor '
        '(auto: pid_broja, else pid_lsmi)',
        PID_SOURCES,
    ),
    Param('monitor.window', 100, 'synergy baseline window, frames'),
    Param('monitor.warmup', 20, 'frames in the baseline before alerts may fire'),
    Param('monitor.on_z', 3.0, 'robust z-score that switches the alert on'),
    Param('monitor.off_z', 1.5, 'z-score below which the alert may switch off'),
    Param('monitor.on_frames', 2, 'consecutive high frames to switch on'),
    Param('monitor.off_frames', 5, 'consecutive calm frames to switch off'),
    Param('monitor.min_synergy', 0.05, 'minimum S (bits) for an alert'),
    Param('monitor.min_scale', 0.02, 'floor of the baseline scale (bits)'),
    Param('monitor.absolute_on', 0.0, 'S (bits) that alerts regardless of baseline; 0 = off'),
    Param('diagnostics_period', 1.0, 'seconds between diagnostics messages'),
    Param(
        'publish_cmd_vel',
        False,
        'publish ~/cmd_vel (geometry_msgs/Twist, TwistStamped with cmd_vel_stamped) from the '
        'action',
    ),
    Param(
        'cmd_vel_stamped',
        False,
        "~/cmd_vel as geometry_msgs/TwistStamped carrying the camera frame's header (ros2_control "
        "diff_drive_controller: the only type on Jazzy, Humble's default use_stamped_vel: true); "
        'false: geometry_msgs/Twist (Nav2, TurtleBot-style bases)',
    ),
    Param('cmd_vel.linear', 0.3, "m/s for 'forward'"),
    Param('cmd_vel.angular', 0.6, "rad/s for 'left' (+) / 'right' (-)"),
)
DEFAULTS: Final[dict[str, Any]] = {p.name: p.default for p in PARAMS}
RCLPY_PARAMS: Final = ('use_sim_time', 'start_type_description_service')
"""Parameters every rclpy node declares itself (Jazzy's type description service the second):
a robot's parameters file often sets them for every node (``/**``); the replay ignores them."""
RCLPY_PREFIXES: Final = ('qos_overrides.',)  # rclpy's QoS overrides, also ignored
BY_NAME: Final[dict[str, Param]] = {p.name: p for p in PARAMS}


@dataclass(frozen=True)
class NodeSettings:
    """Checked parameter values, as the pipeline's configuration objects."""

    model_path: Path
    provider: str
    threads: int
    cuda_graphs: bool
    image_transport: str
    points_type: str
    pipeline: PipelineConfig
    diagnostics_period: float
    twists: Twists | None
    cmd_vel_stamped: bool = False  # ~/cmd_vel as TwistStamped (else Twist)

    def load_model(self) -> FusionModel:
        """The model these settings name, on their provider (the node's and the replay's)."""
        return FusionModel(
            self.model_path, self.provider, self.threads, cuda_graphs=self.cuda_graphs
        )

    @property
    def camera_topic(self) -> str:
        """The topic the camera subscription listens on: ``image_topic``, with image_transport's
        ``/compressed`` suffix for ``image_transport: compressed`` (relative to the node's
        namespace unless it starts with ``/``: :meth:`resolved`)."""
        return self.pipeline.camera_topic

    @property
    def lidar_topic(self) -> str:
        """The topic the LiDAR subscription listens on (``points_topic``)."""
        return self.pipeline.lidar_topic

    def resolved(self, namespace: str = '', node: str = NODE) -> NodeSettings:
        """These settings with the input topics resolved as ROS 2 resolves them for the node
        ``node`` in ``namespace`` (relative ``x`` -> ``/<namespace>/x``, private ``~/x`` ->
        ``/<namespace>/<node>/x``, absolute kept): the names the replay looks up in a bag, and
        the ones diagnostics then name. Remap rules (``-r``) apply to absolute names too."""
        check_namespace(namespace)
        pipeline = dataclasses.replace(
            self.pipeline,
            camera_topic=resolve(self.pipeline.camera_topic, namespace, node),
            lidar_topic=resolve(self.pipeline.lidar_topic, namespace, node),
        )
        return dataclasses.replace(self, pipeline=pipeline)

    @property
    def image_msgtype(self) -> str:
        """The camera subscription's message type (``image_transport``)."""
        compressed = self.image_transport == 'compressed'
        return 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'

    @property
    def points_msgtype(self) -> str:
        """The LiDAR subscription's message type (``points_type``)."""
        scan = self.points_type == 'laserscan'
        return 'sensor_msgs/msg/LaserScan' if scan else 'sensor_msgs/msg/PointCloud2'

    def subscribed_types(self) -> dict[str, tuple[str, str]]:
        """``{topic: (message type, the parameter that chose it)}`` the node subscribes with
        (``fusion_node``: it hears only messages of that type on each topic)."""
        return {
            self.pipeline.camera_topic: (
                self.image_msgtype,
                f'image_transport: {self.image_transport}',
            ),
            self.pipeline.lidar_topic: (self.points_msgtype, f'points_type: {self.points_type}'),
        }


def default_model_path() -> Path:
    """The shipped model: ``$DMIL_ROS_MODEL``, the ament share directory, or the checkout."""
    env = os.environ.get('DMIL_ROS_MODEL')
    if env:
        return Path(env)
    # AMENT_PREFIX_PATH lists the overlay first: its first prefix holding the package wins, as
    # in ament_index (get_package_share_directory)
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    candidates = [
        *(Path(prefix) / 'share' / 'dmil_ros' / 'models' / MODEL_FILE for prefix in prefixes),
        Path(sys.prefix) / 'share' / 'dmil_ros' / 'models' / MODEL_FILE,
        Path(__file__).resolve().parents[2] / 'models' / MODEL_FILE,
    ]
    return next((c for c in candidates if c.is_file()), candidates[-1])


def check(values: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, unknown names and wrong types refused; rclpy's own parameters
    (:data:`RCLPY_PARAMS`, :data:`RCLPY_PREFIXES`) are left out.

    The replay is stricter than the node here: rclpy ignores a file's value for a name the node
    never declares, so a misspelt name would go unnoticed there; the replay refuses it.
    """
    out = dict(DEFAULTS)
    for name, value in values.items():
        if name in RCLPY_PARAMS or name.startswith(RCLPY_PREFIXES):
            continue
        if name not in BY_NAME:
            msg = f'parameter {name!r} unknown (known: {", ".join(BY_NAME)})'
            raise RuntimeConfigError(msg)
        p = BY_NAME[name]
        kind = type(p.default)
        # strictly typed, as ROS 2 parameters are (an int for a float stops the node too), so a
        # file that a replay accepts starts the node
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            hint = f' (write {float(value)!r})' if kind is float and type(value) is int else ''
            msg = f'parameter {name!r}: {value!r} is not a {kind.__name__}{hint}'
            raise RuntimeConfigError(msg)
        if isinstance(value, float) and not math.isfinite(value):  # rcl's YAML reads .nan and .inf
            msg = f'parameter {name!r}: {value!r} is not a finite number'
            raise RuntimeConfigError(msg)
        if p.choices and value not in p.choices:
            msg = f'parameter {name!r}: {value!r} not one of {list(p.choices)}'
            raise RuntimeConfigError(msg)
        out[name] = value
    return out


def camera_topic(image_topic: str, transport: str) -> str:
    """The topic a camera subscription of that transport listens on, as image_transport's
    subscriber plugins name it: the base topic for ``raw``, ``<base>/compressed`` for
    ``compressed`` (``SimpleSubscriberPlugin::getTopicToSubscribe``); a name that already ends
    in ``/compressed`` is taken as the compressed topic itself."""
    if transport == 'compressed' and not image_topic.endswith('/compressed'):
        return f'{image_topic}/compressed'
    return image_topic


def build(values: dict[str, Any]) -> NodeSettings:
    """Parameter values (name -> value) -> :class:`NodeSettings` (checked)."""
    v = check(values)
    monitor = MonitorConfig(
        **{p.name.split('.', 1)[1]: v[p.name] for p in PARAMS if p.name.startswith('monitor.')}
    )
    pipeline = PipelineConfig(
        camera_topic=camera_topic(v['image_topic'], v['image_transport']),
        lidar_topic=v['points_topic'],
        slop=v['slop'],
        queue_size=v['queue_size'],
        silence_timeout=v['silence_timeout'],
        pid_source=v['pid_source'],
        monitor=monitor,
    )
    for name in ('diagnostics_period', 'silence_timeout'):  # the node's timer periods
        if not 0 < v[name] <= MAX_TIMER_SECONDS:  # NaN fails too
            msg = (
                f'parameter {name}: {v[name]!r} must be positive and at most '
                f'{MAX_TIMER_SECONDS:g} s (what an int64 count of nanoseconds holds)'
            )
            raise RuntimeConfigError(msg)
    twists = Twists(v['cmd_vel.linear'], v['cmd_vel.angular']) if v['publish_cmd_vel'] else None
    return NodeSettings(
        model_path=Path(v['model_path']) if v['model_path'] else default_model_path(),
        provider=v['provider'],
        threads=v['threads'],
        cuda_graphs=v['cuda_graphs'],
        image_transport=v['image_transport'],
        points_type=v['points_type'],
        pipeline=pipeline,
        diagnostics_period=v['diagnostics_period'],
        twists=twists,
        cmd_vel_stamped=v['cmd_vel_stamped'],
    )


def load_yaml(path: str | Path, node: str = NODE, namespace: str = '') -> dict[str, Any]:
    """A ROS 2 parameters file's values for the node ``/<namespace>/<node>``, nested keys dotted.

    Node keys match as rcl matches them (rclpy ``node.cpp``): a key, or nested keys joined by
    ``/``, is made absolute and ``/**`` matches any namespace (zero or more segments), ``/*``
    one segment. So ``/**/fusion_node`` reaches the node in any namespace, while a bare
    ``fusion_node`` reaches only ``/fusion_node``. Matching entries apply in file order, the
    later one winning, wildcard or not (rclpy's ``params_by_order.yaml`` test). A file whose
    entries reach no such node (a misspelt node key or ``ros__parameters``, another namespace)
    is refused: rcl would ignore it silently and run on the defaults.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        msg = f'parameters file {str(p)!r}: {exc}'
        raise RuntimeConfigError(msg) from exc
    data = load_tree(text, str(p))  # scalars typed as rcl types them (rcl_yaml.py)
    if not isinstance(data, dict):
        msg = f'parameters file {str(p)!r}: expected a mapping of node names'
        raise RuntimeConfigError(msg)
    ns = namespace.strip('/')
    fqn = f'/{ns}/{node}' if ns else f'/{node}'
    out: dict[str, Any] = {}
    sections = _node_sections(data)
    matched = [section for key, section in sections if _node_pattern(key).fullmatch(fqn)]
    for section in matched:
        out.update(_flatten(section))
    if not matched:
        # rcl would apply nothing, silently: the file was meant for this node, so say so
        keys = ', '.join(repr(key) for key, _ in sections[:5]) or 'none'
        msg = (
            f'parameters file {str(p)!r}: no entry reaches the node {fqn!r} (node keys with '
            f'ros__parameters: {keys}); use /**/{node} for any namespace, or --namespace'
        )
        raise RuntimeConfigError(msg)
    return out


def _node_sections(tree: dict[str, Any], prefix: str = '') -> list[tuple[str, dict[str, Any]]]:
    """``(node key, ros__parameters mapping)`` for each node entry, nested keys joined."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key, value in tree.items():
        if not isinstance(value, dict):
            continue
        name = f'{prefix}/{str(key).strip("/")}'
        params = value.get('ros__parameters')
        if isinstance(params, dict):
            out.append((name, params))
        out += _node_sections({k: v for k, v in value.items() if k != 'ros__parameters'}, name)
    return out


def _node_pattern(key: str) -> re.Pattern[str]:
    r"""rcl's wildcard rule: ``/**`` -> ``(/\w+)*``, ``/*`` -> ``/\w+``."""
    parts = re.split(r'(/\*\*|/\*)', key)
    text = ''.join(
        '(/\\w+)*' if part == '/**' else '/\\w+' if part == '/*' else re.escape(part)
        for part in parts
    )
    return re.compile(text)


def _flatten(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f'{prefix}{k}'
        if isinstance(v, dict):
            out.update(_flatten(v, name + '.'))
        else:
            out[name] = v
    return out
