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

"""DMIL and its baselines (torch). Import only from training / export code, never the node.

``build_model(cfg)`` gives the network a :class:`ModelConfig` names; every model's ``forward``
returns a dict of tensors (``probs``, ``logits_camera``, ``logits_lidar``, ... ; DMIL adds
``gates``, ``sub_probs`` and its auxiliary loss terms).

The configuration classes are torch-free; the networks and losses are imported lazily (PEP 562)
so that command-line parsing never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dmil_ros.model.config import KINDS, LIDAR_ENCODERS, LossWeights, ModelConfig
from dmil_ros.model.errors import ModelConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

    from dmil_ros.model.baselines import JointFusion, LateEnsemble
    from dmil_ros.model.dmil import DMIL
    from dmil_ros.model.losses import dmil_loss, ensemble_loss, joint_loss

__all__ = [
    'DMIL',
    'KINDS',
    'LIDAR_ENCODERS',
    'JointFusion',
    'LateEnsemble',
    'LossWeights',
    'ModelConfig',
    'ModelConfigError',
    'ModelError',
    'build_model',
    'dmil_loss',
    'ensemble_loss',
    'joint_loss',
]

_LAZY = {
    'DMIL': 'dmil_ros.model.dmil',
    'JointFusion': 'dmil_ros.model.baselines',
    'LateEnsemble': 'dmil_ros.model.baselines',
    'dmil_loss': 'dmil_ros.model.losses',
    'ensemble_loss': 'dmil_ros.model.losses',
    'joint_loss': 'dmil_ros.model.losses',
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f'module {__name__!r} has no attribute {name!r}'
    raise AttributeError(msg)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network for ``cfg.kind``."""
    from dmil_ros.model.baselines import JointFusion, LateEnsemble
    from dmil_ros.model.dmil import DMIL

    if cfg.kind == 'dmil':
        return DMIL(cfg)
    if cfg.kind == 'joint':
        return JointFusion(cfg)
    return LateEnsemble(cfg)
