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

"""The fusion runtime, ROS-free: decoders, pairing, ONNX model, synergy monitor, pipeline, replay.

Shared by the rclpy node (:mod:`dmil_ros.ros.fusion_node`) and ``dmil-ros replay``::

    from dmil_ros.runtime import FusionModel, FusionPipeline

    pipe = FusionPipeline(FusionModel('models/dmil_hallway.onnx'))
    for result in pipe.push_camera(image_msg) + pipe.push_lidar(cloud_msg):
        result.header, result.action_label, result.gates, result.interactions, result.alert

Messages may be ``rosbags`` or ``rclpy`` objects (same attribute names).
"""

from __future__ import annotations

from dmil_ros.runtime.contract import ModelInfo, check_contract
from dmil_ros.runtime.decode import (
    SUPPORTED_IMAGE_ENCODINGS,
    decode_image,
    decode_laserscan,
    decode_pointcloud2,
)
from dmil_ros.runtime.errors import DecodeError, ModelError, RuntimeConfigError, RuntimeDmilError
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.monitor import MonitorConfig, MonitorState, SynergyMonitor
from dmil_ros.runtime.pairing import ApproxTimePairer, Pair
from dmil_ros.runtime.pipeline import FusionPipeline, PipelineConfig
from dmil_ros.runtime.preprocess import Points, PreprocessSpec, prepare_image, prepare_points
from dmil_ros.runtime.records import FrameResult

__all__ = [
    'SUPPORTED_IMAGE_ENCODINGS',
    'ApproxTimePairer',
    'DecodeError',
    'FrameResult',
    'FusionModel',
    'FusionPipeline',
    'ModelError',
    'ModelInfo',
    'MonitorConfig',
    'MonitorState',
    'Pair',
    'PipelineConfig',
    'Points',
    'PreprocessSpec',
    'RuntimeConfigError',
    'RuntimeDmilError',
    'SynergyMonitor',
    'check_contract',
    'decode_image',
    'decode_laserscan',
    'decode_pointcloud2',
    'prepare_image',
    'prepare_points',
]
