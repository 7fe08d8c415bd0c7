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

"""Did a camera frame and its paired LiDAR sweep see one simulated scene? (trainer and audit).

The simulator switches scenes between frames, so at a segment boundary a camera frame can pair
with a sweep rendered in the neighbouring scene. ``/sim/ground_truth`` names each camera frame's
segment, ``/sim/lidar_truth`` (``dmil_ros/msg/SweepTruth``) each sweep's. A pair has one scene
family only when both name the same segment.

Bags recorded before ``SweepTruth`` existed have no message on that topic: their pairs are taken
as one scene, as they always were. In a bag that has the topic, a paired sweep with no usable
truth message (lost, cut off, malformed: :meth:`SweepScenes.unusable`) or with two that disagree
cannot be confirmed: its pair is :data:`UNCONFIRMED`, and callers give it no family, like a
two-scene pair, and count it.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple

from dmil_ros.actions import ACTIONS, FAMILIES
from dmil_ros.runtime.faults import stamp_ns

Verdict = Literal['one_scene', 'two_scenes', 'unconfirmed']
UNREADABLE: Final = (AttributeError, TypeError, ValueError, KeyError, OverflowError)
"""What reading a truth or label message's fields raises when the message is not the type its
topic should carry, or holds a value that is no number (trainer and audit count and skip it)."""

_INT32_MAX: Final = 2**31 - 1


class LabelRangeError(ValueError):
    """A truth message field read fine but holds a value no frame can carry."""


ONE_SCENE: Final = 'one_scene'
TWO_SCENES: Final = 'two_scenes'
UNCONFIRMED: Final = 'unconfirmed'


class FrameLabels(NamedTuple):
    """The labels of one ``/sim/ground_truth`` message that trainer and audit use, read together
    when it arrives (a message lacking one is unusable as a whole: :data:`UNREADABLE`)."""

    action: int
    family: int  # index in FAMILIES, -1 for a name it does not know
    segment: int
    camera_latent: int
    lidar_latent: int

    @classmethod
    def of(cls, msg: Any) -> FrameLabels:
        """The message's labels; :class:`LabelRangeError` (a ValueError, in :data:`UNREADABLE`) for
        an action that is no index into ACTIONS or an id beyond int32 (the tables' type)."""
        family = str(msg.family)
        labels = cls(
            int(msg.action),
            FAMILIES.index(family) if family in FAMILIES else -1,
            int(msg.segment),
            int(msg.camera_latent),
            int(msg.lidar_latent),
        )
        if not 0 <= labels.action < len(ACTIONS):
            text = f'action {labels.action} is no index into {len(ACTIONS)} actions'
            raise LabelRangeError(text)
        for name in ('segment', 'camera_latent', 'lidar_latent'):
            value = getattr(labels, name)
            if not 0 <= value <= _INT32_MAX:
                text = f'{name} {value} outside 0..{_INT32_MAX}'
                raise LabelRangeError(text)
        return labels


class SweepScenes:
    """Sweep stamp (ns) -> scene segment, from the ``/sim/lidar_truth`` messages of one bag."""

    def __init__(self) -> None:
        self._segment: dict[int, int] = {}
        self._conflicting: set[int] = set()
        self._topic_seen = False

    def add(self, stamp_ns: int, segment: int) -> None:
        """Record one ``SweepTruth``; a second one for the stamp naming another segment makes
        the stamp unconfirmed."""
        self._topic_seen = True
        known = self._segment.setdefault(stamp_ns, segment)
        if known != segment:
            self._conflicting.add(stamp_ns)

    def add_message(self, msg: Any) -> None:
        """Record one ``SweepTruth`` message; one that cannot be read is noted as
        :meth:`unusable` and its error (one of :data:`UNREADABLE`) re-raised for counting."""
        try:
            self.add(stamp_ns(msg), int(msg.segment))
        except UNREADABLE:
            self.unusable()
            raise

    def unusable(self) -> None:
        """Note a message on the topic that could not be read: the bag does name its sweeps'
        scenes, so a sweep without a usable truth is unconfirmed, not one scene."""
        self._topic_seen = True

    @property
    def conflicting(self) -> int:
        """Sweep stamps named by truth messages that disagree."""
        return len(self._conflicting)

    def __len__(self) -> int:
        return len(self._segment)

    def verdict(self, camera_segment: int, sweep_stamp_ns: int) -> Verdict:
        """Whether the frame of ``camera_segment`` and the sweep at ``sweep_stamp_ns`` saw one
        scene (always :data:`ONE_SCENE` when the bag has no message on the topic)."""
        if not self._topic_seen:
            return ONE_SCENE
        seen = self._segment.get(sweep_stamp_ns)
        if seen is None or sweep_stamp_ns in self._conflicting:
            return UNCONFIRMED
        return ONE_SCENE if seen == camera_segment else TWO_SCENES


__all__ = [
    'ONE_SCENE',
    'TWO_SCENES',
    'UNCONFIRMED',
    'UNREADABLE',
    'FrameLabels',
    'LabelRangeError',
    'SweepScenes',
    'Verdict',
]
