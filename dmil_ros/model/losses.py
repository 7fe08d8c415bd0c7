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

"""Training losses of DMIL and its baselines (one function per model kind).

DMIL (methods.md §4, weights from the training config):

* stage 1 (encoders + ID):
  L1 = CE(head_cam(M1), y) + CE(head_lid(M2), y) + CE(head_joint(Z1, Z2), y)
       + pair * CE(head_pair(N1, N2, N1 * N2), y)
       + alpha * mean over the four KL(q(M_m|Z_m) || N(0,I)), KL(q(N_m|Z_m) || N(0,I))
         (that is alpha / 2 times the mean over m of KL_M + KL_N)
       + recon * mean_m ||dec_m(M_m, N_m) - Z_m||^2
* stage 2 (CD + synergy + gate, stage 1 frozen):
  L2 = -log sum_c g_c p_c(y)                                  (gated prediction)
       + sub * sum_c mean_i (floor + pi_ic) CE(head_c(c_i), y_i) / (1 + floor)
       + alpha * mean KL(R, U1, U2 || N(0,I))
       + beta * alignment (KL between the joint and unimodal R posteriors)
       + gamma * decoupling of U_m from R
       + gate_profile * CE(gate_i, pi_i)                       (gate follows the profile)
       + complexity * sum_c g_c kappa_c, kappa = (0, 1/2, 1/2, 1)
       [+ gate_family * CE(gate_logits, family) where a family label exists]
* stage 3: L1 + L2, every module trainable; but with ``id_encoder_grad`` 0 (the shipped
  configs) the encoders get gradient from the joint head (and the pair head, scaled by
  ``pair_encoder_grad``) only: everything built on M / N, hence all of L2, stops before them
  (see :mod:`dmil_ros.model.dmil`). methods.md §4 fine-tunes the encoders with everything.

The interaction profile pi_i of frame i (our reading; methods.md does not say how gates are
taught) comes from the LSMI discriminators, detached: a_m = sigmoid((p_m(y_i|x_m) - tau) / T)
is "modality m alone gives the right action" (camera, LiDAR), and
    pi = (a_1 a_2, a_1 (1 - a_2), (1 - a_1) a_2, (1 - a_1)(1 - a_2))      (sums to 1)
i.e. redundancy when either sensor suffices, unique when exactly one does, synergy when neither
does alone (a soft, per-frame version of the PID atoms' definitions). Sub-heads are trained as
mixture-of-experts experts: each frame weighs on the component its profile names. The
complexity term (default off) prefers simpler components on ties. ``gate_family`` (default 0)
supervises the gate with the simulator's scene family; off for the shipped models unless their
model card says otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from dmil_ros.model.config import LossWeights

Outputs = dict[str, Tensor]
KAPPA = (0.0, 0.5, 0.5, 1.0)


def _masked_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the rows whose target is >= 0 (0 when none)."""
    keep = target >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[keep], target[keep])


def interaction_profile(out: Outputs, y: Tensor, w: LossWeights) -> Tensor:
    """Per-frame soft target over (R, U_camera, U_lidar, S), (B, 4), from detached heads."""
    idx = y.unsqueeze(1)  # (B, 1)
    t, tau = w.profile_temperature, w.profile_tau

    def knows(key: str) -> Tensor:
        p = out[key].detach().gather(1, idx).squeeze(1)  # (B,) p(y_i | ...)
        return torch.sigmoid((p - tau) / t)

    a1, a2 = knows('probs_camera'), knows('probs_lidar')  # (B,) each
    return torch.stack([a1 * a2, a1 * (1 - a2), (1 - a1) * a2, (1 - a1) * (1 - a2)], 1)


def dmil_loss(
    out: Outputs, y: Tensor, family: Tensor, stage: int, w: LossWeights
) -> tuple[Tensor, dict[str, float]]:
    """Total loss of one DMIL batch and its parts (floats, for logging)."""
    parts: dict[str, Tensor] = {}
    if stage in (1, 3):
        parts['ce_camera'] = F.cross_entropy(out['logits_camera'], y)
        parts['ce_lidar'] = F.cross_entropy(out['logits_lidar'], y)
        parts['ce_joint'] = F.cross_entropy(out['logits_joint'], y)
        if w.pair > 0:
            parts['ce_pair'] = w.pair * F.cross_entropy(out['logits_pair'], y)
        parts['id_kl'] = w.alpha * out['aux_id_kl']
        parts['recon'] = w.recon * out['aux_recon']
    if stage in (2, 3):
        probs = out['probs']  # (B, K)
        parts['nll'] = F.nll_loss(torch.log(probs.clamp_min(1e-8)), y)
        profile = interaction_profile(out, y, w)  # (B, 4)
        sub_logits = out['sub_logits']  # (B, 4, K)
        b, c, k = sub_logits.shape
        ce = F.cross_entropy(
            sub_logits.reshape(b * c, k), y.repeat_interleave(c), reduction='none'
        ).reshape(b, c)  # (B, 4)
        weight = (w.sub_floor + profile) / (1.0 + w.sub_floor)  # (B, 4)
        parts['sub'] = w.sub * (weight * ce).sum(1).mean()
        if w.gate_profile > 0:
            log_g = torch.log_softmax(out['gate_logits'], dim=1)  # (B, 4)
            parts['gate_profile'] = -w.gate_profile * (profile * log_g).sum(1).mean()
        parts['cd_kl'] = w.alpha * out['aux_cd_kl']
        parts['align'] = w.beta * out['aux_align']
        parts['decouple'] = w.gamma * out['aux_decouple']
        kappa = torch.tensor(KAPPA, dtype=probs.dtype)
        if w.complexity > 0:
            parts['complexity'] = w.complexity * (out['gates'] * kappa).sum(dim=1).mean()
        if w.gate_family > 0:
            parts['gate_family'] = w.gate_family * _masked_ce(out['gate_logits'], family)
    total = torch.stack(list(parts.values())).sum()
    return total, {k: float(v.detach()) for k, v in parts.items()}


def joint_loss(out: Outputs, y: Tensor) -> tuple[Tensor, dict[str, float]]:
    parts = {
        'ce_joint': F.cross_entropy(out['logits_joint'], y),
        'probes': F.cross_entropy(out['logits_camera'], y)
        + F.cross_entropy(out['logits_lidar'], y),
    }
    total = parts['ce_joint'] + parts['probes']
    return total, {k: float(v.detach()) for k, v in parts.items()}


def ensemble_loss(out: Outputs, y: Tensor) -> tuple[Tensor, dict[str, float]]:
    parts = {
        'ce_camera': F.cross_entropy(out['logits_camera'], y),
        'ce_lidar': F.cross_entropy(out['logits_lidar'], y),
    }
    total = parts['ce_camera'] + parts['ce_lidar']
    return total, {k: float(v.detach()) for k, v in parts.items()}
