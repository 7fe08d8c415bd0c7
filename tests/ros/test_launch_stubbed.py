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

"""``launch/fusion.launch.py``'s logic against stand-in launch / launch_ros modules (no ROS here).

The launch_testing smoke test runs the real thing where ROS 2 is installed. Here: empty launch
arguments leave the parameters file in charge, non-empty ones override it, and the node is
declared with the package, executable, name and namespace the README documents.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'fusion.launch.py'


class Recorded:
    """A stand-in action or substitution: remembers its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


@pytest.fixture
def launch_file(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    names = {
        'launch': {'LaunchContext': dict, 'LaunchDescription': Recorded},
        'launch.actions': {'DeclareLaunchArgument': Recorded, 'OpaqueFunction': Recorded},
        'launch.substitutions': {
            'LaunchConfiguration': LaunchConfiguration,
            'PathJoinSubstitution': Recorded,
        },
        'launch_ros': {},
        'launch_ros.actions': {'Node': Recorded},
        'launch_ros.parameter_descriptions': {'ParameterValue': Recorded},
        'launch_ros.substitutions': {'FindPackageShare': Recorded},
    }
    for name, attrs in names.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('fusion_launch', LAUNCH_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARAMS_FILE = str(Path(__file__).resolve().parents[2] / 'config' / 'fusion.yaml')


def _context(**values: str) -> dict[str, str]:
    base = {
        'image_topic': '',
        'points_topic': '',
        'model': '',
        'provider': '',
        'params_file': PARAMS_FILE,
        'diagnostics_topic': '/diagnostics',
        'cmd_vel_topic': '~/cmd_vel',
        'publish_cmd_vel': '',
        'cmd_vel_stamped': '',
        'namespace': '',
        'log_level': 'info',
    }
    return {**base, **values}


def test_declared_arguments_default_to_the_parameters_file(launch_file: Any) -> None:
    description = launch_file.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs['default_value'] for e in entities[:-1]}
    assert set(declared) == {
        'namespace',
        'params_file',
        'image_topic',
        'points_topic',
        'model',
        'provider',
        'diagnostics_topic',
        'publish_cmd_vel',
        'cmd_vel_stamped',
        'cmd_vel_topic',
        'log_level',
    }
    for arg in (*launch_file.OVERRIDES, 'publish_cmd_vel', 'cmd_vel_stamped'):
        assert declared[arg] == '', arg
    assert entities[-1].kwargs['function'] is launch_file._node


def test_empty_arguments_leave_the_parameters_file_alone(launch_file: Any) -> None:
    (node,) = launch_file._node(_context())
    assert node.kwargs['package'] == 'dmil_ros'
    assert node.kwargs['executable'] == 'fusion_node'
    assert node.kwargs['name'] == 'fusion_node'
    (params_file,) = node.kwargs['parameters']
    assert params_file.args == ('params_file',)


def test_non_empty_arguments_override(launch_file: Any) -> None:
    (node,) = launch_file._node(_context(model='/m.onnx', points_topic='/velodyne_points'))
    params_file, chosen = node.kwargs['parameters']
    assert params_file.args == ('params_file',)
    assert {k: v.args[0] for k, v in chosen.items()} == {
        'model_path': '/m.onnx',
        'points_topic': '/velodyne_points',
    }
    assert all(v.kwargs == {'value_type': str} for v in chosen.values())


def test_a_params_file_that_is_not_there_stops_the_launch(launch_file: Any) -> None:
    # launch_ros itself only warns and starts the node on built-in defaults
    with pytest.raises(RuntimeError, match=r"params_file '/nowhere\.yaml': no such file"):
        launch_file._node(_context(params_file='/nowhere.yaml'))


def test_diagnostics_go_where_the_aggregator_listens_unless_sent_elsewhere(
    launch_file: Any,
) -> None:
    """The node publishes on the absolute /diagnostics (review 23c, M4): by default nothing
    is remapped; another topic remaps the absolute name (a rule for the relative
    'diagnostics' would expand to /<namespace>/diagnostics and never match)."""
    declared = {
        e.args[0]: e.kwargs['default_value']
        for e in launch_file.generate_launch_description().args[0][:-1]
    }
    assert declared['diagnostics_topic'] == '/diagnostics'
    (node,) = launch_file._node(_context(namespace='robot1'))
    assert node.kwargs['remappings'] == []
    (node,) = launch_file._node(_context(diagnostics_topic='/robot1/diagnostics'))
    ((source, target),) = node.kwargs['remappings']
    assert source == '/diagnostics'
    assert target.args == ('diagnostics_topic',)


@pytest.mark.parametrize(('argument', 'value'), [('true', True), ('False', False)])
def test_the_stamped_twist_can_be_chosen_from_the_command_line(
    launch_file: Any, argument: str, value: bool
) -> None:
    (node,) = launch_file._node(_context(cmd_vel_stamped=argument))
    _, chosen = node.kwargs['parameters']
    assert chosen == {'cmd_vel_stamped': value}


@pytest.mark.parametrize('name', ['', 'a-b', '/diagnostics/', '2d'])
def test_a_diagnostics_topic_rcl_refuses_stops_the_launch(launch_file: Any, name: str) -> None:
    with pytest.raises(RuntimeError, match='diagnostics_topic'):
        launch_file._node(_context(diagnostics_topic=name))
    for good in ('diagnostics', '/diagnostics', 'robot1/diagnostics'):
        launch_file._node(_context(diagnostics_topic=good))


def test_the_twist_output_can_go_where_the_base_listens(launch_file: Any) -> None:
    """``~/cmd_vel`` is private (/<ns>/fusion_node/cmd_vel), where no base controller listens:
    ``cmd_vel_topic:=/cmd_vel`` remaps it; the default adds no rule."""
    (node,) = launch_file._node(_context(cmd_vel_topic='/cmd_vel'))
    assert node.kwargs['remappings'] == [('~/cmd_vel', '/cmd_vel')]
    (node,) = launch_file._node(_context())
    assert node.kwargs['remappings'] == []
    for bad in ('', 'cmd vel', '~cmd_vel', '/cmd_vel/'):
        with pytest.raises(RuntimeError, match='cmd_vel_topic'):
            launch_file._node(_context(cmd_vel_topic=bad))


@pytest.mark.parametrize(
    ('argument', 'value'), [('true', True), ('false', False), ('True', True), ('False', False)]
)
def test_the_twist_output_can_be_switched_from_the_command_line(
    launch_file: Any, argument: str, value: bool
) -> None:
    """``cmd_vel_topic:=/cmd_vel`` alone sent nothing: the output is off in the parameters file,
    and no launch argument could switch it on. The parameter is a bool, as the node declares it
    (a string 'true' would stop rclpy with InvalidParameterTypeException)."""
    (node,) = launch_file._node(_context(publish_cmd_vel=argument, cmd_vel_topic='/cmd_vel'))
    params_file, chosen = node.kwargs['parameters']
    assert params_file.args == ('params_file',)
    assert chosen == {'publish_cmd_vel': value}
    assert type(chosen['publish_cmd_vel']) is bool
    (node,) = launch_file._node(_context())  # empty: the file decides
    assert len(node.kwargs['parameters']) == 1
    declared = {
        e.args[0]: e.kwargs for e in launch_file.generate_launch_description().args[0][:-1]
    }
    assert declared['publish_cmd_vel']['choices'] == ['', 'true', 'false', 'True', 'False']


@pytest.mark.parametrize(
    ('namespace', 'logger'),
    [('', 'fusion_node'), ('robot1', 'robot1.fusion_node'), ('/a/b', 'a.b.fusion_node')],
)
def test_log_level_sets_the_node_logger_only(
    launch_file: Any, namespace: str, logger: str
) -> None:
    """A bare ``--log-level debug`` also turns on rcl's and the middleware's debug output
    (review 23c, L6); rcl names a node's logger by its namespace and name, dot-separated."""
    (node,) = launch_file._node(_context(namespace=namespace, log_level='debug'))
    assert node.kwargs['arguments'] == ['--ros-args', '--log-level', f'{logger}:=debug']
