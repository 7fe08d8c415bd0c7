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

"""Diagnostics follow diagnostic_updater's conventions (ros/diagnostics, ``ros2-jazzy``):

* the publisher is on the absolute ``/diagnostics`` (``diagnostic_updater.cpp:54``);
* a status is named ``node_name_ + ": " + name`` (``:183``), ``node_name_`` being the node's
  ``get_fully_qualified_name()`` with ``diagnostic_updater.use_fqn`` (``:80``): two nodes of
  one name in two namespaces keep apart in diagnostic_aggregator, which keys by name;
* ``hardware_id`` names the device (here the host), not a file.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dmil_ros.bagio import typestore
from dmil_ros.runtime.diagnostics import NAME, DiagnosticsTracker, status_name
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.outputs import node_fqn
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.replay import replay
from tests.runtime.contract_models import build_model
from tests.runtime.test_replay import read_bag, write_bag


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp('m') / 'm.onnx')


@pytest.mark.parametrize(
    ('namespace', 'fqn'),
    [('', '/fusion_node'), ('/', '/fusion_node'), ('robot1', '/robot1/fusion_node'),
     ('/fleet/robot_1', '/fleet/robot_1/fusion_node')],
)  # fmt: skip
def test_status_name_is_the_fully_qualified_node_and_the_task(namespace: str, fqn: str) -> None:
    # rclpy's get_fully_qualified_name(): the namespace, '/', the node name; never '//'
    assert node_fqn(namespace) == fqn
    assert status_name(node_fqn(namespace)) == f'{fqn}: fusion'


def test_the_tracker_names_its_status_and_the_host(model: Path) -> None:
    pipe = FusionPipeline(FusionModel(model, provider='cpu'))
    (status,) = DiagnosticsTracker(pipe).report(1.0)
    assert status.name == NAME == '/fusion_node: fusion'  # a root-namespace node's
    assert status.hardware_id == socket.gethostname()
    assert status.hardware_id != str(model)
    assert dict(status.values)['model'] == str(model)  # the path moved to the values
    named = DiagnosticsTracker(
        pipe, name=status_name('/robot1/fusion_node'), hardware_id='robot1-nuc'
    )
    (status,) = named.report(1.0)
    assert (status.name, status.hardware_id) == ('/robot1/fusion_node: fusion', 'robot1-nuc')


def test_two_namespaced_replays_keep_apart_on_one_diagnostics_topic(
    tmp_path: Path, model: Path
) -> None:
    """Both write to /diagnostics; the aggregator's view (latest status per name) keeps one
    entry per node, where a fixed name made the two overwrite each other."""
    write_bag(tmp_path / 'in', 2.0)
    seen: dict[str, str] = {}
    store = typestore()
    for ns in ('robot1', 'robot2'):
        pipe = FusionPipeline(FusionModel(model, provider='cpu'))
        replay(pipe, tmp_path / 'in', tmp_path / ns, namespace=ns, progress=False)
        out = read_bag(tmp_path / ns)
        assert f'/{ns}/fusion_node/action' in out
        for _, kind, data in out['/diagnostics']:
            for status in store.deserialize_cdr(data, kind).status:
                seen[status.name] = ns
    assert seen == {
        '/robot1/fusion_node: fusion': 'robot1',
        '/robot2/fusion_node: fusion': 'robot2',
    }
