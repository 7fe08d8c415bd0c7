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

"""Issue 8's targets with the shipped model on a fresh simulator bag (equal mix, seed 7).

Ground truth is independent of the audit's estimators: the exact PID of the simulator's latent
variables over the audited frames (``summary['ground_truth']['pid']``, the sidecar's
``mix_pid`` definition) and the per-frame scene family of ``/sim/ground_truth``. Targets:

* ``data_pid`` (CVX on the model's features, recorded labels) within 0.05 bits of every atom;
* the synergy spikes (on ``pid_broja``, the estimate the node's alarm reads) cover >= 90 % of
  the S-family segments and flag <= 10 % of the R-family frames.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmil_ros.actions import COMPONENTS
from dmil_ros.audit.bagaudit import BagOptions
from dmil_ros.audit.runner import AuditOptions, run_audit
from dmil_ros.sim import SimConfig, record_bag

MODEL = Path(__file__).resolve().parents[2] / 'models' / 'dmil_hallway.onnx'
# the issue-8 check, on one seed: at 1,200 frames k = 30 misses redundancy by 0.056 bits, and
# on other seeds 2,000 frames (~50 scenes) miss by 0.04-0.14 (README; the audit warns then)
FRAMES = 2000

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason='real model not present')


@pytest.fixture(scope='module')
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp('simreal')
    record_bag(SimConfig(frames=FRAMES, seed=7), root / 'drive')
    options = AuditOptions(bag=BagOptions(model=str(MODEL)), workers=1, report=False)
    return run_audit([root / 'drive'], root / 'audit', options)


def test_data_pid_within_005_bits_of_ground_truth(summary: dict) -> None:
    truth = summary['ground_truth']['pid']
    got = summary['data_pid']
    assert got is not None, summary['pid_estimator']
    for comp in COMPONENTS:
        assert abs(got[comp] - truth[comp]) <= 0.05, (comp, got, truth)


def test_spikes_follow_the_node_alarm_estimate(summary: dict) -> None:
    assert summary['model']['alert_source'] == 'pid_broja'
    assert summary['spikes_from'] == 'node (model output pid_broja)'
    spikes = summary['ground_truth']['spikes']
    assert spikes['S_segments']['total'] >= 4
    assert spikes['S_segments']['fraction'] >= 0.9
    assert spikes['R']['frames'] > 100
    assert spikes['R']['flagged_fraction'] <= 0.10


def test_frames_spanning_two_scenes_have_no_family(tmp_path: Path) -> None:
    # as in training and evaluation: expected scenes from the simulator's plan (the sweep
    # nearest the camera frame, as the pipeline's pairer picks it)
    from dmil_ros.audit.bagaudit import audit_bag
    from tests.sim.scene_bags import SHORT, planned_families

    record_bag(SHORT, tmp_path / 'short')
    result = audit_bag(tmp_path / 'short', 'short', BagOptions(model=str(MODEL)))
    expected, _ = planned_families(result.arrays['stamp'].tolist(), unknown=set())
    assert result.arrays['family'].tolist() == expected
    assert expected.count(-1) > 0
    assert result.info['family_frames'] == len(expected) - expected.count(-1)
    assert result.info['ground_truth_frames'] == len(expected)  # every frame carries truth
    assert result.info['status'] == 'ok'


def test_frames_whose_sweep_lacks_usable_scene_truth_have_no_family(tmp_path: Path) -> None:
    # as in training: truth lost, malformed or contradicted -> family -1, counted in the
    # bag's errors; a malformed message is skipped, the bag still audited
    from dmil_ros.audit.bagaudit import audit_bag
    from tests.sim.scene_bags import planned_families, record_edited

    drop, malformed, conflict = {1, 4, 9}, {6}, {12}
    bag = record_edited(tmp_path / 'edited', drop, malformed, conflict)
    result = audit_bag(bag, 'edited', BagOptions(model=str(MODEL)))
    expected, unconfirmed = planned_families(
        result.arrays['stamp'].tolist(), drop | malformed | conflict
    )
    assert result.arrays['family'].tolist() == expected
    assert unconfirmed > 0
    assert result.info['status'] == 'partial'
    messages = [e['message'] for e in result.info['errors']]
    assert "topic '/sim/lidar_truth': 1 messages without the fields read, skipped" in messages
    assert any(f'sweeps of {unconfirmed} frames have no scene truth' in m for m in messages)
