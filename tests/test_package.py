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

"""The repo root is a proper ament_python package that also installs with pip."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = 'dmil_ros-{version}.data/data/'


def _version() -> str:
    from dmil_ros import __version__

    return __version__


@pytest.fixture(scope='module')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '--no-deps',
            '--no-build-isolation',
            '-q',
            '-w',
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (path,) = out.glob('dmil_ros-*.whl')
    return zipfile.ZipFile(path)


def test_wheel_installs_share_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    data = DATA.format(version=_version())
    expected = [
        'share/ament_index/resource_index/packages/dmil_ros',
        'share/dmil_ros/package.xml',
        'share/dmil_ros/launch/fusion.launch.py',
        'share/dmil_ros/config/fusion.yaml',
    ]
    for path in expected:
        assert data + path in names, f'{path} missing from the wheel'
    # every file under the shared folders is installed, at the same relative path
    for folder in ('launch', 'config', 'models', 'bags'):
        for file in (ROOT / folder).rglob('*'):
            if file.is_file() and '__pycache__' not in file.parts:
                rel = file.relative_to(ROOT)
                assert f'{data}share/dmil_ros/{rel}' in names, f'{rel} not installed'


def test_wheel_ships_package_and_message_definitions(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert 'dmil_ros/cli.py' in names
    assert 'dmil_ros/py.typed' in names
    msgs = list((ROOT / 'dmil_ros' / 'msg').glob('*.msg'))
    for msg in msgs:
        assert f'dmil_ros/msg/{msg.name}' in names
    assert not any(n.startswith('tests/') for n in names)


def test_wheel_entry_points(wheel: zipfile.ZipFile) -> None:
    (ep,) = [n for n in wheel.namelist() if n.endswith('entry_points.txt')]
    text = wheel.read(ep).decode()
    assert 'dmil-ros = dmil_ros.cli:main' in text
    assert 'fusion_node = dmil_ros.ros.fusion_node:main' in text


def test_package_xml_is_format_3_with_real_dependencies() -> None:
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package'
    assert root.get('format') == '3'
    assert root.findtext('name') == 'dmil_ros'
    assert root.findtext('version') == _version()
    assert root.findtext('export/build_type') == 'ament_python'
    execs = {e.text for e in root.findall('exec_depend')}
    for dep in (
        'rclpy',
        'launch_ros',
        'sensor_msgs',
        'std_msgs',
        'geometry_msgs',
        'diagnostic_msgs',
        'python3-numpy',
        'python3-opencv',
    ):
        assert dep in execs, dep
    tests = {e.text for e in root.findall('test_depend')}
    for dep in ('ament_copyright', 'ament_flake8', 'ament_pep257', 'ament_xmllint'):
        assert dep in tests, dep


def test_ros_dependencies_cover_the_adapter_imports() -> None:
    """Every ROS package the rclpy adapter and launch file import is declared in package.xml."""
    root = ET.parse(ROOT / 'package.xml').getroot()
    declared = {e.text for e in root.findall('exec_depend')}
    files = [*(ROOT / 'dmil_ros' / 'ros').glob('*.py'), *(ROOT / 'launch').glob('*.py')]
    ros_pkgs = {
        'rclpy',
        'launch',
        'launch_ros',
        'std_msgs',
        'sensor_msgs',
        'geometry_msgs',
        'diagnostic_msgs',
        'tf2_msgs',
        'builtin_interfaces',
        'ament_index_python',
    }
    used = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and node.module:
                used.add(node.module.split('.')[0])
            elif isinstance(node, ast.Import):
                used.update(alias.name.split('.')[0] for alias in node.names)
    missing = (used & ros_pkgs) - declared
    assert not missing, f'package.xml lacks exec_depend for {sorted(missing)}'


def test_setup_cfg_puts_scripts_where_ros2_run_looks() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    assert cfg['develop']['script_dir'] == '$base/lib/dmil_ros'
    assert cfg['install']['install_scripts'] == '$base/lib/dmil_ros'
    assert (ROOT / 'resource' / 'dmil_ros').is_file()


def test_runtime_requirements_exclude_torch_and_pick_one_onnxruntime() -> None:
    import setuptools

    captured: dict[str, object] = {}
    original = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)  # type: ignore[assignment]
    try:
        source = (ROOT / 'setup.py').read_text(encoding='utf-8')
        exec(
            compile(source, str(ROOT / 'setup.py'), 'exec'),
            {'__file__': str(ROOT / 'setup.py'), '__name__': 'setup'},
        )
    finally:
        setuptools.setup = original
    requires = captured['install_requires']
    assert isinstance(requires, list)
    assert not any(r.startswith('torch') for r in requires)
    ort = [r for r in requires if r.startswith('onnxruntime')]
    # the two markers are complementary: exactly one applies on any platform
    from packaging.markers import Marker

    for machine in ('x86_64', 'aarch64'):
        for platform in ('linux', 'darwin', 'win32'):
            env = {'platform_machine': machine, 'sys_platform': platform}
            applies = [r for r in ort if Marker(r.split(';', 1)[1]).evaluate(env)]
            assert len(applies) == 1, (env, applies)
    extras = captured['extras_require']
    assert isinstance(extras, dict)
    assert 'torch==2.13.0' in extras['train']


def test_every_python_file_carries_the_licence_header() -> None:
    # what ament_copyright checks under `colcon test` (not installable here): the Apache-2.0
    # header of package.xml's licence on every file, and the licence text beside them
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.findtext('license') == 'Apache-2.0'
    assert 'Apache License' in (ROOT / 'LICENSE').read_text()
    tracked = subprocess.run(
        ['git', 'ls-files', '*.py'], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not tracked:
        pytest.skip('not a git checkout')
    heads = {f: (ROOT / f).read_text()[:400] for f in tracked}
    missing = [
        f
        for f, head in heads.items()
        if not head.startswith('# Copyright ')
        or 'Licensed under the Apache License, Version 2.0' not in head
    ]
    assert missing == []
