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

"""SweepScenes: one scene, two scenes, or not known, from the sweeps' truth messages."""

from __future__ import annotations

from dmil_ros.scenes import ONE_SCENE, TWO_SCENES, UNCONFIRMED, SweepScenes


def test_a_bag_naming_no_sweep_keeps_every_pair_one_scene() -> None:
    assert SweepScenes().verdict(3, 100) == ONE_SCENE  # recorded before SweepTruth existed


def test_verdicts_follow_the_named_segments() -> None:
    scenes = SweepScenes()
    scenes.add(100, 3)
    scenes.add(200, 4)
    scenes.add(200, 4)  # a repeat naming the same segment changes nothing
    assert len(scenes) == 2
    assert scenes.verdict(3, 100) == ONE_SCENE
    assert scenes.verdict(3, 200) == TWO_SCENES
    assert scenes.verdict(3, 300) == UNCONFIRMED  # this sweep's truth is missing
    scenes.add(100, 4)  # two truths that disagree
    assert scenes.conflicting == 1
    assert scenes.verdict(3, 100) == scenes.verdict(4, 100) == UNCONFIRMED


def test_a_topic_with_only_unreadable_truth_confirms_nothing() -> None:
    scenes = SweepScenes()
    scenes.unusable()  # the bag has the topic, but no message on it could be read
    assert scenes.verdict(3, 100) == UNCONFIRMED
