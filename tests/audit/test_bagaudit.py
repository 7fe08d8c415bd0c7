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
