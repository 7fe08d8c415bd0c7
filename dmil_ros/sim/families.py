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

"""Scene families: their latent variables, the expert's rule, and their ground-truth PID.

Every scene segment draws two latent variables: ``camera_latent`` C (only the camera can
observe it) and ``lidar_latent`` L (only the LiDAR can observe it); the expert action Y is a
deterministic rule of (C, L). The family's ground-truth PID is ``exact_pid`` of the design
distribution p(C, L, Y) (C, L uniform and independent, Y = rule(C, L)), in bits. Actions index
:data:`dmil_ros.actions.ACTIONS` (0 forward, 1 left, 2 right, 3 stop).

R (redundancy; designed R = 2 bits, U = S = 0)
    A corridor with one of four layouts: 0 straight on -> forward; 1 the corridor turns left
    (end wall ahead, opening on the left ahead) -> left; 2 turns right -> right; 3 a crate
    blocks the corridor -> stop. Both sensors see the layout: C = L = layout, Y = layout.
U_camera (camera-unique; designed U_camera = 2 bits, others 0)
    A crossroads (open ahead, left and right) whose geometry is the same for every action; the
    cue is colour/texture only: a painted floor arrow (0 green forward, 1 yellow left, 2 magenta
    right) or 3 a closed glass door (the camera sees its frame and tinted pane, the LiDAR sees
    straight through it) -> stop. Y = C. L = crossroads width class (narrow, wide), independent
    of Y. Floor paint has the floor's LiDAR intensity, so the LiDAR cannot see the arrows.
U_lidar (LiDAR-unique; designed U_lidar = 2 bits, others 0)
    A dark room: the camera sees only sensor noise (C = exposure gain class, independent of
    everything). Geometry decides: the same four layouts as R, Y = L = layout.
S (synergy; designed S = 1 bit, others 0; an XOR rule)
    A dead-end corridor: a lit sign on the end wall ahead (C: 0 green, 1 amber) and, beside the
    robot (outside the camera's field of view, inside the LiDAR's 360 degrees), an open passage
    on one side (L: 0 left, 1 right) and a closed service door recessed in the other side.
    Green means "take the open passage", amber "the passage is for people, use the service
    door": Y = left if C == L else right. The sign has the same LiDAR intensity in both colours,
    so each sensor alone is at chance (I(C;Y) = I(L;Y) = 0) and together they decide (1 bit).

A recording mixes families by segment; the mix's ground truth is ``exact_pid`` of the pooled
joint with the family visible to both sensors: X1 = (family, C), X2 = (family, L), plus the
family-weighted average of the per-family atoms (the PID conditioned on the family).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTION_INDEX, ACTIONS, COMPONENTS, FAMILIES
from dmil_ros.sim.errors import SimConfigError

F64 = npt.NDArray[np.float64]

FORWARD, LEFT, RIGHT, STOP = (ACTION_INDEX[a] for a in ('forward', 'left', 'right', 'stop'))
LAYOUTS: tuple[str, ...] = ('straight', 'turn_left', 'turn_right', 'obstacle')
"""Corridor layouts of the R and U_lidar families; layout index == action index."""


def _rule_r(c: int, l: int) -> int:  # noqa: E741
    return l


def _rule_u_camera(c: int, l: int) -> int:  # noqa: E741
    return c


def _rule_u_lidar(c: int, l: int) -> int:  # noqa: E741
    return l


def _rule_s(c: int, l: int) -> int:  # noqa: E741
    return LEFT if c == l else RIGHT


@dataclass(frozen=True)
class FamilyDesign:
    """One family: the names of its latent values and its design distribution."""

    name: str
    camera_values: tuple[str, ...]
    lidar_values: tuple[str, ...]
    tied: bool  # True when C and L are the same variable (R): only the diagonal is drawn

    def rule(self, c: int, l: int) -> int:  # noqa: E741
        """The expert's action for latents (c, l)."""
        return int(_RULES[self.name](c, l))

    def joint(self) -> F64:
        """Design distribution p(C, L, Y): shape ``(len(camera_values), len(lidar_values), 4)``."""
        nc, nl = len(self.camera_values), len(self.lidar_values)
        p = np.zeros((nc, nl, len(ACTIONS)))
        for c in range(nc):
            for l in range(nl):  # noqa: E741
                if self.tied and c != l:
                    continue
                p[c, l, self.rule(c, l)] = 1.0
        out: F64 = p / p.sum()
        return out

    def sample(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """Draw (c, l, action) from the design distribution."""
        c = int(rng.integers(len(self.camera_values)))
        l = c if self.tied else int(rng.integers(len(self.lidar_values)))  # noqa: E741
        return c, l, self.rule(c, l)


_RULES = {'R': _rule_r, 'U_camera': _rule_u_camera, 'U_lidar': _rule_u_lidar, 'S': _rule_s}

DESIGNS: dict[str, FamilyDesign] = {
    'R': FamilyDesign('R', LAYOUTS, LAYOUTS, tied=True),
    'U_camera': FamilyDesign(
        'U_camera',
        ('arrow_forward', 'arrow_left', 'arrow_right', 'glass_door'),
        ('width_narrow', 'width_wide'),
        tied=False,
    ),
    'U_lidar': FamilyDesign('U_lidar', ('dark_low_gain', 'dark_high_gain'), LAYOUTS, tied=False),
    'S': FamilyDesign('S', ('sign_green', 'sign_amber'), ('opening_left', 'opening_right'), False),
}


def pid_dict(joint: npt.ArrayLike) -> dict[str, float]:
    """``exact_pid`` of p(camera, lidar, action) as ``{component: bits}`` (COMPONENTS keys)."""
    from dmil_ros.pid import exact_pid

    res = exact_pid(joint)
    values = (res.redundancy, res.unique_1, res.unique_2, res.synergy)
    return {name: float(v) for name, v in zip(COMPONENTS, values, strict=True)}


@cache
def family_pid(family: str) -> dict[str, float]:
    """Ground-truth PID (bits) of one family's design distribution."""
    if family not in DESIGNS:
        msg = f'unknown family {family!r} (expected one of {", ".join(FAMILIES)})'
        raise SimConfigError(msg)
    return pid_dict(DESIGNS[family].joint())


def pooled_joint(weights: Mapping[str, float]) -> F64:
    """p(X1, X2, Y) of a mix with X1 = (family, C), X2 = (family, L) (families in FAMILIES order).

    Families of weight 0 still own their (empty) rows and columns; ``exact_pid`` drops them.
    """
    sizes_c = [len(DESIGNS[f].camera_values) for f in FAMILIES]
    sizes_l = [len(DESIGNS[f].lidar_values) for f in FAMILIES]
    out = np.zeros((sum(sizes_c), sum(sizes_l), len(ACTIONS)))
    oc = ol = 0
    for fam, nc, nl in zip(FAMILIES, sizes_c, sizes_l, strict=True):
        out[oc : oc + nc, ol : ol + nl] = weights.get(fam, 0.0) * DESIGNS[fam].joint()
        oc, ol = oc + nc, ol + nl
    joint: F64 = out / out.sum()
    return joint


def pooled_index(family: str, c: int, l: int) -> tuple[int, int]:  # noqa: E741
    """Row and column of (family, c, l) in :func:`pooled_joint`."""
    k = FAMILIES.index(family)
    oc = sum(len(DESIGNS[f].camera_values) for f in FAMILIES[:k])
    ol = sum(len(DESIGNS[f].lidar_values) for f in FAMILIES[:k])
    return oc + c, ol + l


def empirical_joint(records: Sequence[tuple[str, int, int, int]]) -> F64:
    """Pooled p(X1, X2, Y) counted from ``(family, c, l, action)`` per frame."""
    shape = pooled_joint(dict.fromkeys(FAMILIES, 1.0)).shape
    counts = np.zeros(shape)
    for fam, c, l, a in records:  # noqa: E741
        i, j = pooled_index(fam, c, l)
        counts[i, j, a] += 1.0
    if counts.sum() <= 0:
        msg = 'empirical joint: no frames'
        raise SimConfigError(msg)
    joint: F64 = counts / counts.sum()
    return joint


def ground_truth_summary(
    mix: Mapping[str, float], records: Sequence[tuple[str, int, int, int]] | None = None
) -> dict[str, Any]:
    """Everything the sidecar ``ground_truth.json`` says about interactions (bits).

    ``families``: design PID and joint of each family; ``mix_pid``: exact PID of the pooled
    design joint; ``mix_pid_given_family``: mix-weighted family atoms; ``empirical``: frame
    counts per family and exact PID of the pooled joint counted from the recorded frames.
    """
    families: dict[str, Any] = {}
    for fam in FAMILIES:
        design = DESIGNS[fam]
        families[fam] = {
            'pid': family_pid(fam),
            'camera_values': list(design.camera_values),
            'lidar_values': list(design.lidar_values),
            'joint': design.joint().tolist(),
        }
    given = {
        comp: float(sum(mix.get(f, 0.0) * families[f]['pid'][comp] for f in FAMILIES))
        for comp in COMPONENTS
    }
    out: dict[str, Any] = {
        'units': 'bits',
        'components': list(COMPONENTS),
        'actions': list(ACTIONS),
        'families': families,
        'mix': {f: float(mix.get(f, 0.0)) for f in FAMILIES},
        'mix_pid': pid_dict(pooled_joint(mix)),
        'mix_pid_given_family': given,
    }
    out['definitions'] = DEFINITIONS
    if records:
        counts = {f: sum(1 for r in records if r[0] == f) for f in FAMILIES}
        per_family: dict[str, dict[str, float]] = {}
        for fam in FAMILIES:
            if counts[fam]:
                design = DESIGNS[fam]
                p = np.zeros((len(design.camera_values), len(design.lidar_values), len(ACTIONS)))
                for f, c, l, a in records:  # noqa: E741
                    if f == fam:
                        p[c, l, a] += 1.0
                per_family[fam] = pid_dict(p / p.sum())
        out['empirical'] = {
            'frames': len(records),
            'family_frames': counts,
            'pid': pid_dict(empirical_joint(records)),
            'family_pid': per_family,
            'pid_given_family': {
                comp: float(
                    sum(counts[f] * per_family[f][comp] for f in per_family) / len(records)
                )
                for comp in COMPONENTS
            },
        }
    return out


DEFINITIONS: dict[str, str] = {
    'families.*.pid': 'exact_pid of the family design p(camera_latent, lidar_latent, action)',
    'mix_pid': 'exact_pid of the pooled design joint with X1 = (family, camera_latent), '
    'X2 = (family, lidar_latent): the data set as one distribution; the family is seen by both '
    'sensors, so part of each family-specific atom becomes redundancy/synergy here',
    'mix_pid_given_family': 'sum_f mix[f] * families[f].pid: the PID conditioned on the family '
    '(what per-frame estimates average to within families)',
    'empirical.pid': 'mix_pid computed from the recorded frames instead of the design',
    'empirical.family_pid': 'per-family exact_pid of the recorded frames (latents drawn once '
    'per segment, so short recordings can differ from the design)',
    'empirical.pid_given_family': 'frame-weighted average of empirical.family_pid',
}
