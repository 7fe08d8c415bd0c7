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

"""The parameters file: node keys match the node's fully qualified name as rcl matches them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dmil_ros.runtime import params
from dmil_ros.runtime.errors import RuntimeConfigError

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'p.yaml'
    path.write_text(text, encoding='utf-8')
    return path


@pytest.mark.parametrize(
    ('key', 'namespace', 'applies'),
    [
        ('fusion_node', '', True),
        ('fusion_node', 'robot1', False),  # rcl: a bare name is /fusion_node only
        ('/fusion_node', '', True),
        ('/**/fusion_node', '', True),
        ('/**/fusion_node', 'robot1', True),
        ('/**/fusion_node', 'fleet/robot1', True),
        ('/**', 'robot1', True),
        ('/*/fusion_node', 'robot1', True),
        ('/*/fusion_node', '', False),
        ('/*/fusion_node', 'fleet/robot1', False),
        ('/robot1/fusion_node', 'robot1', True),
        ('/robot1/fusion_node', 'robot2', False),
        ('/**/other_node', 'robot1', False),
    ],
)
def test_node_key_matching(tmp_path: Path, key: str, namespace: str, applies: bool) -> None:
    path = _write(tmp_path, f'{key}:\n  ros__parameters:\n    slop: 0.07\n')
    if applies:
        assert params.load_yaml(path, namespace=namespace) == {'slop': 0.07}
    else:  # a file whose entries reach no node is refused, not read as empty
        with pytest.raises(RuntimeConfigError, match='no entry reaches the node'):
            params.load_yaml(path, namespace=namespace)


def test_nested_namespace_keys_and_file_order(tmp_path: Path) -> None:
    text = (
        '/robot1:\n'
        '  fusion_node:\n'
        '    ros__parameters:\n'
        '      slop: 0.02\n'
        '/**:\n'
        '  ros__parameters:\n'
        '    slop: 0.09\n'
        '    queue_size: 7\n'
        '    monitor:\n'
        '      on_z: 4.0\n'
    )
    path = _write(tmp_path, text)
    # entries apply in file order, the later winning even when it is a wildcard (as in rcl)
    assert params.load_yaml(path, namespace='robot1') == {
        'slop': 0.09,
        'queue_size': 7,
        'monitor.on_z': 4.0,
    }
    assert params.load_yaml(path, namespace='robot2')['slop'] == 0.09


def test_last_matching_entry_wins(tmp_path: Path) -> None:
    # rclpy's test/resources/test_node/params_by_order.yaml and its expectation
    text = (
        '/**/node2:\n  ros__parameters:\n    a_value: "first"\n'
        '/ns/node2:\n  ros__parameters:\n    a_value: "second"\n'
        '/*/node2:\n  ros__parameters:\n    a_value: "last_one_win"\n'
    )
    path = _write(tmp_path, text)
    assert params.load_yaml(path, node='node2', namespace='ns') == {'a_value': 'last_one_win'}
    assert params.load_yaml(path, node='node2') == {'a_value': 'first'}


def test_shipped_config_reaches_a_namespaced_node() -> None:
    config = ROOT / 'config' / 'fusion.yaml'
    plain = params.load_yaml(config)
    namespaced = params.load_yaml(config, namespace='robot1')
    assert plain == namespaced
    # every declared parameter is in the shipped file, with the declared type
    declared = {p.name: p.default for p in params.PARAMS}
    assert set(plain) == set(declared)
    for name, value in plain.items():
        assert type(value) is type(declared[name]), name


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('monitor:\n  on_z: 3', "'monitor.on_z': 3 is not a float (write 3.0)"),
        ('diagnostics_period: 1', "'diagnostics_period': 1 is not a float (write 1.0)"),
        ('queue_size: 30.0', "'queue_size': 30.0 is not a int"),
        ('publish_cmd_vel: 1', "'publish_cmd_vel': 1 is not a bool"),
        ('slop: true', "'slop': True is not a float"),
    ],
)
def test_types_are_as_strict_as_ros(tmp_path: Path, text: str, message: str) -> None:
    """rclpy refuses an int for a declared double (InvalidParameterTypeException), so the
    replay refuses it too: a parameters file a replay accepts starts the node."""
    path = _write(
        tmp_path,
        f'/**/fusion_node:\n  ros__parameters:\n    {text.replace(chr(10), chr(10) + "    ")}\n',
    )
    with pytest.raises(RuntimeConfigError, match=re.escape(message)):
        params.build(params.load_yaml(path))


@pytest.mark.parametrize(('text', 'expected'), [('', True), ('cuda_graphs: false', False)])
def test_cuda_graphs_reach_the_replays_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    from dmil_ros.cli import main
    from dmil_ros.runtime.model import FusionModel

    seen: list[object] = []
    init = FusionModel.__init__

    def spy(self: FusionModel, *args: object, **kwargs: object) -> None:
        seen.append(kwargs.get('cuda_graphs'))
        init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FusionModel, '__init__', spy)
    path = _write(tmp_path, f'/**/fusion_node:\n  ros__parameters:\n    {text or "slop: 0.05"}\n')
    bag = ROOT / 'bags' / 'hallway_demo'
    argv = ['replay', str(bag), '--out', str(tmp_path / 'out'), '--params', str(path)]
    assert main([*argv, '--provider', 'cpu', '--no-progress']) == 0
    assert seen == [expected]


@pytest.mark.parametrize(
    'text',
    [
        'cmd_vel:\n  linear: .nan',
        'cmd_vel:\n  angular: .inf',
        'diagnostics_period: .inf',
        'silence_timeout: .inf',
        'slop: -.inf',
        'monitor:\n  min_scale: .inf',
        'monitor:\n  absolute_on: .inf',
    ],
)
def test_non_finite_values_are_refused_by_name(tmp_path: Path, text: str) -> None:
    """rcl reads .nan / .inf as doubles: a NaN velocity would reach the base, an infinite timer
    period stop rclpy's create_timer with a traceback."""
    name = text.replace(':\n  ', '.').split(':')[0]
    path = _write(
        tmp_path,
        '/**/fusion_node:\n  ros__parameters:\n    publish_cmd_vel: true\n'
        f'    {text.replace(chr(10), chr(10) + "    ")}\n',
    )
    with pytest.raises(RuntimeConfigError, match=f'parameter {re.escape(repr(name))}: .* finite'):
        params.build(params.load_yaml(path))


def test_the_core_configs_refuse_non_finite_values_too() -> None:
    """For library users, who build the configs without a parameters file."""
    import math

    from dmil_ros.runtime.monitor import MonitorConfig
    from dmil_ros.runtime.outputs import Twists
    from dmil_ros.runtime.pairing import ApproxTimePairer
    from dmil_ros.runtime.pipeline import PipelineConfig

    with pytest.raises(RuntimeConfigError, match=r'cmd_vel\.linear=nan'):
        Twists(linear=math.nan)
    with pytest.raises(RuntimeConfigError, match=r'cmd_vel\.angular=inf'):
        Twists(angular=math.inf)
    with pytest.raises(RuntimeConfigError, match='min_scale=inf'):
        MonitorConfig(min_scale=math.inf)
    with pytest.raises(RuntimeConfigError, match='absolute_on=inf'):
        MonitorConfig(absolute_on=math.inf)
    with pytest.raises(RuntimeConfigError, match='silence_timeout inf'):
        PipelineConfig(silence_timeout=math.inf)
    with pytest.raises(RuntimeConfigError, match=r'slop -1\.0'):
        PipelineConfig(slop=-1.0)
    with pytest.raises(RuntimeConfigError, match='slop inf'):
        ApproxTimePairer(slop=math.inf)


def test_a_timer_period_beyond_int64_nanoseconds_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, '/**/fusion_node:\n  ros__parameters:\n    diagnostics_period: 1e10\n')
    with pytest.raises(RuntimeConfigError, match=r'diagnostics_period: 10000000000\.0 must be'):
        params.build(params.load_yaml(path))


@pytest.mark.parametrize(
    ('text', 'namespace'),
    [
        ('/**/fusion_nod:\n  ros__parameters:\n    slop: 0.01\n', ''),  # misspelt node
        ('/**/fusion_node:\n  ros_parameters:\n    slop: 0.01\n', ''),  # misspelt section
        ('/robot1/fusion_node:\n  ros__parameters:\n    slop: 0.01\n', ''),  # other namespace
        ('/robot1/fusion_node:\n  ros__parameters:\n    slop: 0.01\n', 'robot2'),
    ],
)
def test_a_file_that_reaches_no_node_is_refused(tmp_path: Path, text: str, namespace: str) -> None:
    """rcl ignores such a file silently; the replay ran on the defaults (review 20b #1)."""
    path = _write(tmp_path, text)
    with pytest.raises(RuntimeConfigError, match='no entry reaches the node'):
        params.load_yaml(path, namespace=namespace)
    # the same entry with the right name or namespace applies
    fixed = text.replace('fusion_nod:', 'fusion_node:')
    fixed = fixed.replace('ros_parameters', 'ros__parameters')
    ns = 'robot1' if '/robot1/' in fixed else ''
    assert params.load_yaml(_write(tmp_path, fixed), namespace=ns) == {'slop': 0.01}


def _install_model(prefix: Path) -> Path:
    """A fake ament prefix with the package's shipped model in its share directory."""
    path = prefix / 'share' / 'dmil_ros' / 'models' / params.MODEL_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b'onnx')
    return path


def test_the_shipped_model_comes_from_the_first_prefix_like_ament_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sourced overlay puts its prefix first on AMENT_PREFIX_PATH; ament_index (and
    get_package_share_directory) take the first prefix holding the package, so the overlay's
    model is the one to load, not the underlay's."""
    import os

    monkeypatch.delenv('DMIL_ROS_MODEL', raising=False)
    overlay = _install_model(tmp_path / 'overlay' / 'install')
    underlay = _install_model(tmp_path / 'opt' / 'ros' / 'humble')
    prefixes = [overlay.parents[3], underlay.parents[3]]
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join(map(str, prefixes)))
    assert params.default_model_path() == overlay
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join(map(str, prefixes[::-1])))
    assert params.default_model_path() == underlay
    # a prefix without the package is skipped (ament_index looks for its marker there)
    overlay.unlink()
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join(map(str, prefixes)))
    assert params.default_model_path() == underlay


@pytest.mark.parametrize(
    ('topic', 'transport', 'subscribed', 'msgtype'),
    [
        ('/camera/image_raw', 'raw', '/camera/image_raw', 'sensor_msgs/msg/Image'),
        (
            '/camera/image_raw',
            'compressed',
            '/camera/image_raw/compressed',
            'sensor_msgs/msg/CompressedImage',
        ),
        (
            '/camera/image_raw/compressed',
            'compressed',
            '/camera/image_raw/compressed',
            'sensor_msgs/msg/CompressedImage',
        ),
        (
            'camera/color',
            'compressed',
            'camera/color/compressed',
            'sensor_msgs/msg/CompressedImage',
        ),
    ],
)
def test_compressed_transport_subscribes_to_the_compressed_sub_topic(
    topic: str, transport: str, subscribed: str, msgtype: str
) -> None:
    """image_transport names a base topic; its compressed subscriber listens on
    ``<base>/compressed`` (SimpleSubscriberPlugin::getTopicToSubscribe: base + '/' +
    transport), where compressed_image_transport publishes. ``/camera/image_raw`` carries the
    raw Image: subscribing there as CompressedImage heard nothing."""
    settings = params.build({'image_topic': topic, 'image_transport': transport})
    assert settings.camera_topic == subscribed == settings.pipeline.camera_topic
    assert settings.subscribed_types()[subscribed][0] == msgtype
    assert settings.lidar_topic == params.DEFAULTS['points_topic']


def test_cmd_vel_stamped_is_a_read_only_bool_parameter(tmp_path: Path) -> None:
    assert params.BY_NAME['cmd_vel_stamped'].default is False
    assert params.build({}).cmd_vel_stamped is False
    path = _write(
        tmp_path,
        '/**/fusion_node:\n  ros__parameters:\n    publish_cmd_vel: true\n'
        '    cmd_vel_stamped: true\n',
    )
    settings = params.build(params.load_yaml(path))
    assert settings.cmd_vel_stamped is True
    assert settings.twists is not None
    with pytest.raises(RuntimeConfigError, match="'cmd_vel_stamped': 'yes' is not a bool"):
        params.build({'cmd_vel_stamped': 'yes'})


def test_default_input_topics_are_relative_and_the_shipped_file_agrees() -> None:
    """M5: relative defaults follow the node's namespace (namespace:=robot1 listens on
    /robot1/camera/image_raw); the shipped file holds the same values as the declarations."""
    assert params.DEFAULTS['image_topic'] == 'camera/image_raw'
    assert params.DEFAULTS['points_topic'] == 'lidar/points'
    assert params.load_yaml(ROOT / 'config' / 'fusion.yaml') == params.DEFAULTS


@pytest.mark.parametrize(
    ('image_topic', 'transport', 'namespace', 'camera', 'lidar'),
    [
        # rcl_expand_topic_name: relative -> /<ns>/name, ~/ -> /<ns>/<node>/name, / kept
        ('camera/image_raw', 'raw', '', '/camera/image_raw', '/lidar/points'),
        ('camera/image_raw', 'raw', '/', '/camera/image_raw', '/lidar/points'),
        ('camera/image_raw', 'raw', 'robot1', '/robot1/camera/image_raw', '/robot1/lidar/points'),
        (
            'camera/image_raw',
            'compressed',
            '/fleet/robot_1',
            '/fleet/robot_1/camera/image_raw/compressed',
            '/fleet/robot_1/lidar/points',
        ),
        ('/camera/image_raw', 'raw', 'robot1', '/camera/image_raw', '/robot1/lidar/points'),
        ('~/image', 'raw', 'robot1', '/robot1/fusion_node/image', '/robot1/lidar/points'),
    ],
)
def test_resolved_settings_name_the_topics_as_ros_resolves_them(
    image_topic: str, transport: str, namespace: str, camera: str, lidar: str
) -> None:
    settings = params.build({'image_topic': image_topic, 'image_transport': transport})
    resolved = settings.resolved(namespace)
    assert (resolved.camera_topic, resolved.lidar_topic) == (camera, lidar)
    assert set(resolved.subscribed_types()) == {camera, lidar}
    assert resolved.pipeline.slop == settings.pipeline.slop  # nothing else changes
    assert dataclasses.replace(resolved, pipeline=settings.pipeline) == settings
    if image_topic.startswith('~/'):  # a node renamed at launch (-r __node:=cam_fusion)
        assert settings.resolved(namespace, 'cam_fusion').camera_topic == camera.replace(
            '/fusion_node/', '/cam_fusion/'
        )


def test_resolving_against_a_namespace_ros_refuses_is_refused() -> None:
    with pytest.raises(RuntimeConfigError, match='not a ROS 2 namespace'):
        params.build({}).resolved('1robot')
