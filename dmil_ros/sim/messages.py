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

"""Simulator records -> ROS 2 message objects of the pinned typestore (CDR-ready).

Frame ids: ``base_link`` (robot), ``lidar_link`` (LiDAR, 0.4 m above base_link by default),
``camera_link`` (camera body) and ``camera_optical_frame`` (z forward, x right, y down, REP 103).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dmil_ros.actions import ACTIONS
from dmil_ros.bagio import typestore
from dmil_ros.sim.config import SimConfig
from dmil_ros.sim.geometry import CAMERA_FORWARD_M
from dmil_ros.sim.render import CameraModel, LidarModel
from dmil_ros.sim.simulator import CameraFrame, FrameTruth, LidarSweep

CAMERA_FRAME = 'camera_optical_frame'
LIDAR_FRAME = 'lidar_link'
BASE_FRAME = 'base_link'

POINT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ('x', 0, 7),
    ('y', 4, 7),
    ('z', 8, 7),
    ('intensity', 12, 7),
    ('ring', 16, 4),
    ('time', 18, 7),
)
"""(name, offset, PointField datatype): FLOAT32 = 7, UINT16 = 4 (Velodyne driver layout)."""
POINT_STEP = 22
POINT_DTYPE = np.dtype(
    {
        'names': [f[0] for f in POINT_FIELDS],
        'formats': ['<f4', '<f4', '<f4', '<f4', '<u2', '<f4'],
        'offsets': [f[1] for f in POINT_FIELDS],
        'itemsize': POINT_STEP,
    }
)


def _types() -> Any:
    return typestore().types


def header(stamp_ns: int, frame_id: str) -> Any:
    t = _types()
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=sec, nanosec=nsec), frame_id=frame_id
    )


def image_msg(frame: CameraFrame) -> Any:
    h, w, _ = frame.rgb.shape
    return _types()['sensor_msgs/msg/Image'](
        header=header(frame.stamp_ns, CAMERA_FRAME),
        height=h,
        width=w,
        encoding='rgb8',
        is_bigendian=0,
        step=3 * w,
        data=np.ascontiguousarray(frame.rgb).reshape(-1),
    )


def camera_info_msg(stamp_ns: int, cam: CameraModel) -> Any:
    t = _types()
    # the renderer's ray of pixel u passes through (u + 0.5 - cx) / fx (pixel edges at
    # integers); ROS / OpenCV put pixel centres at integers (u = fx X / Z + cx): half a pixel
    fx, fy, cx, cy = cam.fx, cam.fy, cam.cx - 0.5, cam.cy - 0.5
    roi = t['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return t['sensor_msgs/msg/CameraInfo'](
        header=header(stamp_ns, CAMERA_FRAME),
        height=cam.height,
        width=cam.width,
        distortion_model='plumb_bob',
        d=np.zeros(5),
        k=np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]),
        r=np.eye(3).reshape(-1),
        p=np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def pointcloud_msg(sweep: LidarSweep) -> Any:
    t = _types()
    n = int(sweep.xyz.shape[0])
    rec = np.empty(n, POINT_DTYPE)
    rec['x'], rec['y'], rec['z'] = sweep.xyz[:, 0], sweep.xyz[:, 1], sweep.xyz[:, 2]
    rec['intensity'] = sweep.intensity
    rec['ring'] = sweep.ring
    rec['time'] = sweep.data.time
    fields = [
        t['sensor_msgs/msg/PointField'](name=name, offset=off, datatype=dt, count=1)
        for name, off, dt in POINT_FIELDS
    ]
    return t['sensor_msgs/msg/PointCloud2'](
        header=header(sweep.stamp_ns, LIDAR_FRAME),
        height=1,
        width=n,
        fields=fields,
        is_bigendian=False,
        point_step=POINT_STEP,
        row_step=POINT_STEP * n,
        data=rec.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def laserscan_msg(sweep: LidarSweep, lidar: LidarModel) -> Any:
    step = 2 * np.pi / lidar.steps
    return _types()['sensor_msgs/msg/LaserScan'](
        header=header(sweep.stamp_ns, LIDAR_FRAME),
        angle_min=float(lidar.azimuth[0]),
        angle_max=float(lidar.azimuth[-1]),
        angle_increment=float(step),
        time_increment=float(lidar.period / lidar.steps),
        scan_time=float(lidar.period),
        range_min=0.3,
        range_max=float(lidar.max_range),
        ranges=sweep.data.scan_ranges,
        intensities=sweep.data.scan_intensities,
    )


def twist_msg(truth: FrameTruth) -> Any:
    t = _types()
    vec = t['geometry_msgs/msg/Vector3']
    return t['geometry_msgs/msg/Twist'](
        linear=vec(x=truth.cmd[0], y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=truth.cmd[1])
    )


def action_msg(truth: FrameTruth) -> Any:
    return _types()['std_msgs/msg/String'](data=ACTIONS[truth.action])


def ground_truth_msg(truth: FrameTruth) -> Any:
    x, y, yaw = truth.pose
    return _types()['dmil_ros/msg/GroundTruth'](
        header=header(truth.stamp_ns, CAMERA_FRAME),
        family=truth.family,
        action=truth.action,
        segment=truth.segment,
        frame=truth.frame,
        camera_latent=truth.camera_latent,
        lidar_latent=truth.lidar_latent,
        camera_cue=truth.camera_cue,
        lidar_cue=truth.lidar_cue,
        corridor_half_width=truth.corridor_half_width,
        decision_distance=truth.decision_distance,
        light_level=truth.light_level,
        robot_x=x,
        robot_y=y,
        robot_yaw=yaw,
        cmd_linear_x=truth.cmd[0],
        cmd_angular_z=truth.cmd[1],
    )


def sweep_truth_msg(sweep: LidarSweep) -> Any:
    """The scene a LiDAR sweep was rendered in (``dmil_ros/msg/SweepTruth``)."""
    return _types()['dmil_ros/msg/SweepTruth'](
        header=header(sweep.stamp_ns, LIDAR_FRAME),
        family=sweep.family,
        segment=sweep.segment,
        sweep=sweep.index,
    )


def tf_static_msg(stamp_ns: int, cfg: SimConfig) -> Any:
    """base_link -> lidar_link, base_link -> camera_link -> camera_optical_frame."""
    t = _types()

    def tf(parent: str, child: str, xyz: tuple[float, float, float], q: tuple[float, ...]) -> Any:
        return t['geometry_msgs/msg/TransformStamped'](
            header=header(stamp_ns, parent),
            child_frame_id=child,
            transform=t['geometry_msgs/msg/Transform'](
                translation=t['geometry_msgs/msg/Vector3'](x=xyz[0], y=xyz[1], z=xyz[2]),
                rotation=t['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3]),
            ),
        )

    ident = (0.0, 0.0, 0.0, 1.0)
    optical = (-0.5, 0.5, -0.5, 0.5)  # camera_link (x fwd, y left, z up) -> optical frame
    return t['tf2_msgs/msg/TFMessage'](
        transforms=[
            tf(BASE_FRAME, LIDAR_FRAME, (0.0, 0.0, cfg.lidar_height_m), ident),
            tf(BASE_FRAME, 'camera_link', (CAMERA_FORWARD_M, 0.0, cfg.camera_height_m), ident),
            tf('camera_link', CAMERA_FRAME, (0.0, 0.0, 0.0), optical),
        ]
    )
