"""DMIL and its baselines (torch). Import only from training / export code, never the node.

``build_model(cfg)`` gives the network a :class:`ModelConfig` names; every model's ``forward``
returns a dict of tensors (``probs``, ``logits_camera``, ``logits_lidar``, ... ; DMIL adds
``gates``, ``sub_probs`` and its auxiliary loss terms).
"""

from __future__ import annotations

from torch import nn

from dmil_ros.model.baselines import JointFusion, LateEnsemble
from dmil_ros.model.config import KINDS, LIDAR_ENCODERS, LossWeights, ModelConfig
from dmil_ros.model.dmil import DMIL
from dmil_ros.model.errors import ModelConfigError, ModelError
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


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network for ``cfg.kind``."""
    if cfg.kind == 'dmil':
        return DMIL(cfg)
    if cfg.kind == 'joint':
        return JointFusion(cfg)
    return LateEnsemble(cfg)
