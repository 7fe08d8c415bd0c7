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

"""``audit_bag``: how the per-bag stage calls the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bagfactory import write_small_bag

from dmil_ros.audit.bagaudit import BagOptions, audit_bag
from dmil_ros.runtime.model import FusionModel
from models import build


@pytest.mark.parametrize('heads', [False, True])
def test_no_model_call_exceeds_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heads: bool
) -> None:
    """A LiDAR message completes two camera frames at once and the end of the bag several, so
    the pending frames overshoot ``batch``; every call still carries at most ``batch`` frames,
    as the replay's do, and the frames are the same as with one large batch."""
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=40)
    model = str(build(tmp_path / 'm.onnx', heads=heads))
    wide = audit_bag(bag, 'b', BagOptions(model=model, batch=64))
    sizes: list[int] = []
    run = FusionModel.run

    def spy(self: FusionModel, image: np.ndarray, lidar: np.ndarray) -> dict:
        sizes.append(len(image))
        return run(self, image, lidar)

    monkeypatch.setattr(FusionModel, 'run', spy)
    narrow = audit_bag(bag, 'b', BagOptions(model=model, batch=3))
    assert sizes, 'the spy saw no model call'
    assert max(sizes) <= 3, sizes
    assert sum(sizes) >= len(narrow.arrays['stamp'])
    for key, value in wide.arrays.items():
        np.testing.assert_allclose(narrow.arrays[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_truth_value_out_of_range_is_counted_and_skipped(tmp_path: Path) -> None:
    """An action no index into ACTIONS (a corrupt uint8 in a well-formed message) is an error
    entry naming the topic; the merge still runs (it stopped the whole audit: review 19a #2)."""
    from dmil_ros.audit.merge import merge

    bag = tmp_path / 'bag'
    actions = [(i // 10) % 4 for i in range(40)]
    actions[20] = 7
    write_small_bag(bag, frames=40, truth_actions=actions)
    result = audit_bag(bag, 'b', BagOptions(model=str(build(tmp_path / 'm.onnx', heads=True))))
    messages = [e['message'] for e in result.info['errors']]
    assert result.info['status'] == 'partial', messages
    assert any("'/sim/ground_truth': 1 messages with a field out of range" in m for m in messages)
    assert set(result.arrays['label'].tolist()) <= {0, 1, 2, 3}
    table, _ = merge([result])
    assert table.num_rows == result.frames


def test_frames_after_a_clock_reset_do_not_take_each_others_labels(tmp_path: Path) -> None:
    """Frames 40.. repeat the stamps of frames 0..: the truth joined on the stamp would give
    the first run the second run's action (review 19a #3); now neither run gets a label."""
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=80, truth_actions=[0] * 40 + [1] * 40, repeat_stamps_after=40)
    result = audit_bag(bag, 'b', BagOptions(model=str(build(tmp_path / 'm.onnx', heads=True))))
    assert result.frames > 60
    assert (result.arrays['label'] == -1).all()
    assert (result.arrays['segment'] == -1).all()
    assert result.info['pipeline']['clock_jumps_back'] >= 1
    assert result.info['status'] == 'partial'
    assert any('share their header stamp' in e['message'] for e in result.info['errors'])


def test_clean_truth_still_labels_every_frame(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    actions = [(i // 10) % 4 for i in range(40)]
    stamps = write_small_bag(bag, frames=40, truth_actions=actions)
    result = audit_bag(bag, 'b', BagOptions(model=str(build(tmp_path / 'm.onnx', heads=True))))
    assert result.info['status'] == 'ok', result.info['errors']
    want = dict(zip(stamps, actions, strict=True))
    got = result.arrays['label'].tolist()
    assert got == [want[s] for s in result.arrays['stamp'].tolist()]


def test_undecodable_images_are_error_entries(tmp_path: Path) -> None:
    """Half the images short of their data: half the frames are gone and the bag says why
    (it was 'ok' with no error entry: review 19a #4)."""
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=40, short_images=frozenset(range(0, 40, 2)))
    result = audit_bag(bag, 'b', BagOptions(model=str(build(tmp_path / 'm.onnx', heads=True))))
    messages = [e['message'] for e in result.info['errors']]
    assert result.info['status'] == 'partial'
    assert result.frames <= 20
    assert any(
        m.startswith("topic '/camera/image_raw': 20 messages not usable (size)") for m in messages
    ), messages
