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

"""ament_python package ``dmil_ros``; also a plain pip-installable distribution.

``colcon build`` and ``pip install .`` both run this file. The shared files (launch, config,
models, sample bags, package.xml and the ament index marker) go to ``share/dmil_ros`` so that
``ros2 launch dmil_ros fusion.launch.py`` finds them through ``get_package_share_directory``.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = 'dmil_ros'
HERE = Path(__file__).resolve().parent


def _tree(folder: str) -> list[tuple[str, list[str]]]:
    """``data_files`` entries that mirror ``folder`` (recursively) under ``share/dmil_ros``."""
    entries: dict[str, list[str]] = {}
    root = HERE / folder
    if not root.is_dir():
        return []
    for path in sorted(root.rglob('*')):
        if path.is_file() and '__pycache__' not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(str(Path('share', PACKAGE, rel.parent)), []).append(str(rel))
    return sorted(entries.items())


def _version() -> str:
    for line in (HERE / PACKAGE / '__init__.py').read_text(encoding='utf-8').splitlines():
        if line.startswith('__version__'):
            return line.split('=', 1)[1].strip().strip('\'"')
    msg = 'dmil_ros/__init__.py: __version__ not found'
    raise RuntimeError(msg)


RUNTIME = [
    # Humble's python3-numpy / python3-opencv (1.21.5 / 4.5.4) run the node and the replay
    # (tests/runtime, tests/ros, tests/bagio pass on them, Python 3.10): numpy.typing.NDArray
    # needs 1.21; OpenCV >= 4.8 only enables the one-call image standardisation (preprocess.py)
    'numpy>=1.21.5,<3',
    'opencv-python-headless>=4.5.4',
    'rosbags>=0.11,<0.12',
    # rosbags parses metadata.yaml with ruamel.yaml: its C loader opens a bag 3x faster
    "ruamel.yaml.clib>=0.2.8; platform_python_implementation == 'CPython'",
    # zstd that releases the GIL: bag chunks inflate on a second core while the replay and the
    # audit work (dmil_ros/bagio/prefetch.py; optional, no rosdep key: without it rosbags reads)
    'zstandard>=0.22',
    'scipy>=1.11',
    'scikit-learn>=1.4',
    'tqdm>=4.66',
    'threadpoolctl>=3.1',
    'pyarrow>=15',
    # One ONNX Runtime, never both (they install the same module): the GPU build on Linux x86-64
    # (CUDA when a GPU and its libraries are present, CPU otherwise), the CPU build elsewhere;
    # >= 1.23 for InferenceSession(enable_fallback=0) (dmil_ros.runtime.model).
    "onnxruntime-gpu>=1.23; sys_platform == 'linux' and platform_machine == 'x86_64'",
    "onnxruntime>=1.23; sys_platform != 'linux' or platform_machine != 'x86_64'",
]
TRAIN = ['torch==2.13.0', 'onnx>=1.17', 'onnxscript>=0.2', 'tensorboard>=2.16']
DEV = [
    *TRAIN,
    'pytest>=8',
    'hypothesis>=6.100',
    'ruff>=0.6',
    'mypy>=1.11',
    'dit>=1.5',
    'ecos>=2.0.14',
    # the benchmarks measure the hand-written point-cloud code against it (the node and the
    # audit do not import it): bench_sim.py, bench_audit.py
    'open3d>=0.18',
]

setup(
    name=PACKAGE,
    version=_version(),
    packages=find_packages(exclude=['tests', 'tests.*', 'benchmarks']),
    package_data={PACKAGE: ['py.typed', 'msg/*.msg']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *_tree('launch'),
        *_tree('config'),
        *_tree('models'),
        *_tree('bags'),
    ],
    install_requires=RUNTIME,
    # 'test': what colcon test looks for to run pytest (colcon-core reads tests_require and
    # extras 'test'/'tests'/'testing'); without it, it runs unittest, which finds nothing
    extras_require={'train': TRAIN, 'dev': DEV, 'ray': ['ray>=2.9'], 'test': ['pytest']},
    python_requires='>=3.10',
    zip_safe=False,
    maintainer='dmil_ros developers',
    maintainer_email='dmil-ros@example.com',
    description='Interaction-aware camera + LiDAR fusion (DMIL, LSMI, PID) for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dmil-ros = dmil_ros.cli:main',
            'fusion_node = dmil_ros.ros.fusion_node:main',
        ],
    },
)
