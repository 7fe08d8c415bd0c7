"""Launch the dmil_ros fusion node.

    ros2 launch dmil_ros fusion.launch.py namespace:=robot1 \
        image_topic:=/camera/image_raw points_topic:=/lidar/points

Arguments: ``namespace`` (outputs go to /<namespace>/fusion_node/... and
/<namespace>/diagnostics), ``image_topic``, ``points_topic``, ``model`` (empty: the shipped
models/dmil_hallway.onnx), ``provider`` (auto|cpu|cuda|tensorrt), ``params_file`` (default: the
package's config/fusion.yaml), ``log_level``. Arguments override the parameters file.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument(
            'image_topic',
            default_value='/camera/image_raw',
            description='camera topic (sensor_msgs/Image)',
        ),
        DeclareLaunchArgument(
            'points_topic',
            default_value='/lidar/points',
            description='LiDAR topic (sensor_msgs/PointCloud2)',
        ),
        DeclareLaunchArgument(
            'model', default_value='', description='ONNX model; empty = the shipped model'
        ),
        DeclareLaunchArgument(
            'provider',
            default_value='auto',
            choices=['auto', 'cpu', 'cuda', 'tensorrt'],
            description='ONNX Runtime provider',
        ),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution(
                [FindPackageShare('dmil_ros'), 'config', 'fusion.yaml']
            ),
            description='parameters file of the fusion node',
        ),
        DeclareLaunchArgument('log_level', default_value='info', description='ROS log level'),
    ]
    node = Node(
        package='dmil_ros',
        executable='fusion_node',
        name='fusion_node',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'image_topic': ParameterValue(LaunchConfiguration('image_topic'), value_type=str),
                'points_topic': ParameterValue(
                    LaunchConfiguration('points_topic'), value_type=str
                ),
                'model_path': ParameterValue(LaunchConfiguration('model'), value_type=str),
                'provider': ParameterValue(LaunchConfiguration('provider'), value_type=str),
            },
        ],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )
    return LaunchDescription([*arguments, node])
