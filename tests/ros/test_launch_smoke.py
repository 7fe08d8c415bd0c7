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

"""launch_testing smoke test of ``fusion.launch.py`` (runs where ROS 2 is installed).

Starts the launch file with a namespace, publishes synthetic camera + LiDAR messages, and checks
that ``~/action_probs`` arrives stamped with the published camera stamps and that the node exits
cleanly on shutdown. Skipped (module level) where launch_testing / rclpy are missing.

``colcon test`` may run on the robot with its stack up: the test keeps to a DDS domain of its
own, discovered on this host only, and to ``/smoke/...`` input topics, so its grey frames never
reach the robot's perception and the robot's frames never reach the node under test (review
23c, M6). ``DMIL_SMOKE_DOMAIN_ID`` picks the domain (default: 51-100 from the process id).
"""

from __future__ import annotations

import array
import os
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip('launch_testing')
rclpy = pytest.importorskip('rclpy')

# before rclpy starts here and before launch starts the node, which inherits the environment
os.environ['ROS_DOMAIN_ID'] = os.environ.get('DMIL_SMOKE_DOMAIN_ID', str(51 + os.getpid() % 50))
if os.environ.get('ROS_DISTRO', 'humble') == 'humble':
    os.environ['ROS_LOCALHOST_ONLY'] = '1'
else:  # Jazzy and later: ROS_LOCALHOST_ONLY is deprecated
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image, JointState, PointCloud2, PointField  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NS = 'smoke'
CAMERA, POINTS = '/smoke/camera/image_raw', '/smoke/lidar/points'


def model_path() -> str:
    shipped = ROOT / 'models' / 'dmil_hallway.onnx'
    if shipped.is_file():
        return str(shipped)
    pytest.importorskip('onnx')
    from tests.runtime.contract_models import build_model

    return str(build_model(Path(tempfile.mkdtemp()) / 'smoke.onnx'))


@pytest.mark.ros
@pytest.mark.launch_test
def generate_test_description() -> Any:
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(ROOT / 'launch' / 'fusion.launch.py')),
        launch_arguments={
            'namespace': NS,
            'model': model_path(),
            'provider': 'cpu',
            'params_file': str(ROOT / 'config' / 'fusion.yaml'),
            'image_topic': CAMERA,
            'points_topic': POINTS,
        }.items(),
    )
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


def image_msg(stamp_ns: int) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = 'camera_optical_frame'
    msg.height, msg.width, msg.encoding, msg.step = 48, 64, 'rgb8', 64 * 3
    msg.data = array.array('B', bytes(np.full(48 * 64 * 3, 90, np.uint8)))
    return msg


def cloud_msg(stamp_ns: int) -> PointCloud2:
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-10, 10, (2000, 3)).astype(np.float32)
    msg = PointCloud2()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = 'lidar_link'
    msg.height, msg.width, msg.point_step, msg.row_step = 1, 2000, 12, 24000
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, n in enumerate('xyz')
    ]
    msg.is_dense = True
    msg.data = array.array('B', xyz.tobytes())
    return msg


class TestFusionNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node('fusion_smoke_probe')

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_outputs_carry_camera_stamps(self) -> None:
        got: list[JointState] = []
        sub = self.node.create_subscription(
            JointState, f'/{NS}/fusion_node/action_probs', got.append, 10
        )
        cam = self.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        lid = self.node.create_publisher(PointCloud2, POINTS, qos_profile_sensor_data)
        sent = set()
        t0 = time.time_ns()
        k = 0
        try:
            deadline = time.time() + 30.0
            while time.time() < deadline and len(got) < 5:
                stamp = t0 + k * 50_000_000
                cam.publish(image_msg(stamp))
                sent.add(stamp)
                if k % 2 == 0:
                    lid.publish(cloud_msg(stamp + 5_000_000))
                k += 1
                rclpy.spin_once(self.node, timeout_sec=0.05)
        finally:
            self.node.destroy_subscription(sub)
        assert len(got) >= 5
        for msg in got:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert stamp in sent
            assert msg.header.frame_id == 'camera_optical_frame'
            assert len(msg.position) == 4
            assert abs(sum(msg.position) - 1.0) < 1e-4


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info: Any) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
