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

"""ROS imports live only in the adapters: dmil_ros/ros/ and launch/ (AST scan of every module)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROS_MODULES = {
    'rclpy',
    'rcl_interfaces',
    'launch',
    'launch_ros',
    'launch_testing',
    'launch_testing_ros',
    'rosidl_runtime_py',
    'sensor_msgs',
    'std_msgs',
    'geometry_msgs',
    'diagnostic_msgs',
    'builtin_interfaces',
    'tf2_msgs',
    'ament_index_python',
}
ALLOWED = (ROOT / 'dmil_ros' / 'ros', ROOT / 'launch')


def ros_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split('.')[0] in ROS_MODULES]
    return found


def test_scanner_finds_ros_imports(tmp_path: Path) -> None:
    probe = tmp_path / 'probe.py'
    probe.write_text('import os\nimport rclpy.node\nfrom sensor_msgs.msg import Image\n')
    assert ros_imports(probe) == ['rclpy.node', 'sensor_msgs.msg']


def test_no_ros_imports_outside_adapters() -> None:
    offenders = {}
    files = sorted((ROOT / 'dmil_ros').rglob('*.py')) + sorted((ROOT / 'benchmarks').rglob('*.py'))
    assert files
    for path in files:
        if any(path.is_relative_to(a) for a in ALLOWED):
            continue
        found = ros_imports(path)
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_adapters_do_import_ros() -> None:
    """The scan is not vacuous: the node and the launch file are where ROS is used."""
    assert 'rclpy' in ros_imports(ROOT / 'dmil_ros' / 'ros' / 'fusion_node.py')
    assert 'launch_ros.actions' in ros_imports(ROOT / 'launch' / 'fusion.launch.py')
