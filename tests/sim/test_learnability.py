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

"""Each family's decisive cue is readable at the model's input resolution, and only there.

Features are exactly what the models see (dmil_ros.runtime.preprocess: 48x64 image, 16x180
range image); a held-out linear probe must read the decisive latent from the deciding sensor
and must stay near chance on the action from a non-deciding sensor.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from dmil_ros.runtime.preprocess import PreprocessSpec, prepare_image, prepare_points
from dmil_ros.sim import SimConfig, Simulator

SPEC = PreprocessSpec()


def dataset(family: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """n frames, one fresh scene each (segments of one frame)."""
    sim = Simulator(SimConfig(frames=n, seed=seed, mix={family: 1.0}, segment_frames=(1, 1)))
    cam, lid, c, l, y = [], [], [], [], []  # noqa: E741
    for f in sim.frames():
        cam.append(prepare_image(f.rgb, SPEC).ravel())
        lid.append(prepare_points(f.lidar.points(), SPEC).ravel())
        t = f.camera.truth
        c.append(t.camera_latent)
        l.append(t.lidar_latent)
        y.append(t.action)
    return {
        k: np.asarray(v) for k, v in {'camera': cam, 'lidar': lid, 'c': c, 'l': l, 'y': y}.items()
    }


def probe(train: dict[str, np.ndarray], test: dict[str, np.ndarray], x: str, y: str) -> float:
    clf = RidgeClassifier(alpha=1.0)
    clf.fit(train[x], train[y])
    return float(clf.score(test[x], test[y]))


@pytest.mark.parametrize(
    ('family', 'readable', 'chance'),
    [
        ('R', [('camera', 'y'), ('lidar', 'y')], []),
        ('U_camera', [('camera', 'y')], [('lidar', 'y')]),
        ('U_lidar', [('lidar', 'y')], [('camera', 'y')]),
        ('S', [('camera', 'c'), ('lidar', 'l')], [('camera', 'y'), ('lidar', 'y')]),
    ],
)
def test_decisive_cue_is_readable_and_the_other_sensor_is_not(
    family: str, readable: list[tuple[str, str]], chance: list[tuple[str, str]]
) -> None:
    train, test = dataset(family, 80, 1), dataset(family, 60, 2)
    for x, y in readable:
        assert probe(train, test, x, y) >= 0.9, (family, x, y)
    for x, y in chance:
        classes = len(np.unique(train[y]))
        assert probe(train, test, x, y) <= 1.0 / classes + 0.2, (family, x, y)
