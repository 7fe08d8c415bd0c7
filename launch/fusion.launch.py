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

"""Launch the dmil_ros fusion node.

    ros2 launch dmil_ros fusion.launch.py namespace:=robot1

Arguments: ``namespace`` (the node listens on /<namespace>/camera/image_raw and
/<namespace>/lidar/points, the parameters file's relative names, and publishes on
/<namespace>/fusion_node/...; diagnostics go to /diagnostics), ``params_file`` (default: the
package's config/fusion.yaml, whose ``/**/fusion_node`` entry reaches the node in any namespace; a
path that is no file stops the launch), ``image_topic``, ``points_topic``, ``model``, ``provider``
(auto|cpu|cuda|tensorrt), ``diagnostics_topic`` (default ``/diagnostics``, where
diagnostic_aggregator and rqt_robot_monitor listen), ``publish_cmd_vel`` and ``cmd_vel_stamped``
(``true`` / ``false``; empty: the parameters file, whose defaults are off: Twist; on: TwistStamped,
as diff_drive_controller takes), ``cmd_vel_topic`` (default the private ``~/cmd_vel``; ``/cmd_vel``
for the base controller), ``log_level`` (the node's own logger: ``debug`` does not turn on rcl's
and the middleware's debug output).

``image_topic``, ``points_topic``, ``model``, ``provider``, ``publish_cmd_vel`` and
``cmd_vel_stamped`` are empty by default: the parameters file decides (its empty ``model_path``
means the shipped models/dmil_hallway.onnx). A non-empty argument overrides the file. (A dict entry
always present would override a user's ``params_file`` with the launch defaults: launch_ros applies
the later definition.)
"""

import re
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# a relative or absolute ROS 2 topic name: tokens of letters, digits and underscores, not
# starting with a digit, separated by single slashes
TOPIC_NAME = re.compile(r'/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')

# launch argument -> node parameter, overridden only when the argument is not empty
OVERRIDES = {
    'image_topic': 'image_topic',
    'points_topic': 'points_topic',
    'model': 'model_path',
    'provider': 'provider',
}


# launch arguments of the node's bool parameters of the same names: '' leaves the file alone
BOOL_ARGUMENTS = ('publish_cmd_vel', 'cmd_vel_stamped')
BOOL_CHOICES = ['', 'true', 'false', 'True', 'False']


def overrides(arguments: dict[str, str]) -> dict[str, str]:
    """The node parameters the launch arguments set (empty arguments set nothing)."""
    return {param: arguments[arg] for arg, param in OVERRIDES.items() if arguments.get(arg)}


def _topic_argument(context: LaunchContext, name: str, *, private: bool = False) -> str:
    """A topic-name launch argument's value (``private``: ``~/name`` too); rcl would refuse
    a bad remap rule with a traceback, so a bad name stops the launch with one line."""
    value = LaunchConfiguration(name).perform(context)
    if not TOPIC_NAME.fullmatch(value.removeprefix('~/') if private else value):
        msg = f'{name} {value!r}: not a ROS topic name'
        raise RuntimeError(msg)
    return value


def node_logger(context: LaunchContext) -> str:
    """The node's logger name (``robot1.fusion_node`` under ``namespace:=robot1``): the
    ``log_level`` argument sets it alone, not rcl's, the middleware's and every other logger's
    as a bare ``--log-level`` would."""
    namespace = LaunchConfiguration('namespace').perform(context)
    return '.'.join([*namespace.strip('/').split('/'), 'fusion_node']).lstrip('.')


def _node(context: LaunchContext, *args: object, **kwargs: object) -> list[Node]:
    values = {arg: LaunchConfiguration(arg).perform(context) for arg in OVERRIDES}
    params_file = LaunchConfiguration('params_file').perform(context)
    level = LaunchConfiguration('log_level').perform(context)
    if not Path(params_file).is_file():  # launch_ros would only warn, then run on defaults
        msg = f'params_file {params_file!r}: no such file'
        raise RuntimeError(msg)
    diagnostics = _topic_argument(context, 'diagnostics_topic')
    cmd_vel = _topic_argument(context, 'cmd_vel_topic', private=True)
    # the node publishes on the absolute /diagnostics: a rule for the relative 'diagnostics'
    # would expand to /<namespace>/diagnostics and never match
    remappings = []
    if diagnostics != '/diagnostics':
        remappings.append(('/diagnostics', LaunchConfiguration('diagnostics_topic')))
    if cmd_vel != '~/cmd_vel':  # the Twist output (publish_cmd_vel), where a base listens
        remappings.append(('~/cmd_vel', cmd_vel))
    parameters = [LaunchConfiguration('params_file')]
    chosen: dict[str, object] = {
        k: ParameterValue(v, value_type=str) for k, v in overrides(values).items()
    }
    for flag in BOOL_ARGUMENTS:
        value = LaunchConfiguration(flag).perform(context)
        if value:  # true / false in either case (the choices): a bool, as the node declares it
            chosen[flag] = value.lower() == 'true'
    if chosen:
        parameters.append(chosen)
    return [
        Node(
            package='dmil_ros',
            executable='fusion_node',
            name='fusion_node',
            namespace=LaunchConfiguration('namespace'),
            output='screen',
            emulate_tty=True,
            parameters=parameters,
            remappings=remappings,
            arguments=['--ros-args', '--log-level', f'{node_logger(context)}:={level}'],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('dmil_ros'), 'config', 'fusion.yaml']
            ),
            description='parameters file of the fusion node',
        ),
        DeclareLaunchArgument(
            'image_topic',
            default_value='',
            description='camera base topic (relative: in the namespace; image_transport '
            'compressed listens on <topic>/compressed); empty = the parameters file',
        ),
        DeclareLaunchArgument(
            'points_topic',
            default_value='',
            description='LiDAR topic (relative: in the namespace); empty = the parameters file',
        ),
        DeclareLaunchArgument(
            'model',
            default_value='',
            description='ONNX model; empty = the parameters file (empty there: the shipped model)',
        ),
        DeclareLaunchArgument(
            'provider',
            default_value='',
            choices=['', 'auto', 'cpu', 'cuda', 'tensorrt'],
            description='ONNX Runtime provider (auto|cpu|cuda|tensorrt); empty = the params file',
        ),
        DeclareLaunchArgument(
            'diagnostics_topic',
            default_value='/diagnostics',
            description='where diagnostics go (default /diagnostics, where '
            'diagnostic_aggregator listens)',
        ),
        DeclareLaunchArgument(
            'publish_cmd_vel',
            default_value='',
            choices=BOOL_CHOICES,
            description='publish the action as a geometry_msgs/Twist on cmd_vel_topic; empty = '
            'the parameters file (off by default)',
        ),
        DeclareLaunchArgument(
            'cmd_vel_stamped',
            default_value='',
            choices=BOOL_CHOICES,
            description='true: TwistStamped with the camera stamp (ros2_control '
            'diff_drive_controller); empty = the parameters file (off: Twist)',
        ),
        DeclareLaunchArgument(
            'cmd_vel_topic',
            default_value='~/cmd_vel',
            description='where the Twist output goes when publish_cmd_vel is on (e.g. /cmd_vel '
            'for the base controller); default: private to the node',
        ),
        DeclareLaunchArgument(
            'log_level',
            default_value='info',
            choices=['debug', 'info', 'warn', 'error', 'fatal'],
            description="the node's log level (its logger only, not rcl's or the middleware's)",
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
