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
