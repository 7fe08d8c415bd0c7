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

"""DMIL: explicit redundancy / unique / synergy components with per-frame gates.

Methods.md §4 (CVPR 2026, "Information-Theoretic Decomposition for Multimodal Interaction
Learning"; authors' code bjlfzs/DMIL). With camera = modality 1 and LiDAR = modality 2:

1. encoders: Z1 = f1(image), Z2 = f2(lidar)                                     # (B, D)
2. intra-modality decomposition (ID): variational bottlenecks Z_m -> M_m (task-relevant: the
   unimodal head predicts Y from it) and Z_m -> N_m (residual, kept for synergy); a decoder
   reconstructs Z_m from [M_m, N_m] so N_m keeps what M_m drops; KL terms bound I(Z_m; M_m) and
   I(Z_m; N_m). A joint head on [Z1, Z2] is the p(y|x1, x2) discriminator (LSMI) and shapes the
   encoders in stage 1 (the ID losses reach the encoders only scaled by ``id_encoder_grad``); a
   linear head on [N1, N2, N1 * N2] gives the N's the joint task (our reading of "kept for
   synergy": without it nothing in stage 1 asks the N's for what only the pair decides); its
   gradient reaches the encoders scaled by ``pair_encoder_grad`` (default: ``id_encoder_grad``),
   so the multiplicative path can shape the encoders while the unimodal heads do not.
3. consistency decomposition (CD): R from a bottleneck on [mu(M1), mu(M2)], aligned with the R
   posteriors computed from each modality alone (KL(q(R|M1,M2) || q(R|M_m)), the authors'
   alignment); U_m from a bottleneck on M_m, decoupled from R by a cross-correlation penalty
   (see :func:`~dmil_ros.model.layers.cross_correlation_penalty`).
4. synergy: S = MLP([N1, N2, N1 * N2]) (the product makes XOR linear for +-1 codes).
5. gate: g = softmax(MLP([R, U1, U2, S])), y_hat = sum_c g_c softmax(head_c(c)).

Where this departs from the authors' code (a reading of methods.md, or a choice made here):

* the gate's input is detached: the gated prediction teaches the gate and the sub-heads, not
  the components (those are shaped by their own heads and the CD terms); the gate mixes
  probabilities, where the authors mix logits;
* there is no reconstruction of M_m from (R, U_m) (the authors' ``recon_tr``): only the
  sub-heads and the decoupling penalty shape R and U_m;
* with ``id_encoder_grad`` below 1 the encoders see everything built on M / N (the ID terms in
  stage 1, all of stage 2's losses in stage 3) only scaled by it: the shipped configs (0) fine-tune
  the encoders in stage 3 through the joint and pair heads alone (the model card's rare-synergy
  study measures the alternatives);
* U_m comes from a sample of M_m, R from the means (the authors use the means for both).

Components and gates are in ``dmil_ros.actions.COMPONENTS`` order: redundancy, unique_camera,
unique_lidar, synergy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dmil_ros.model.config import ModelConfig, gate_width
from dmil_ros.model.encoders import CameraEncoder, lidar_encoder
from dmil_ros.model.layers import (
    Gaussian,
    VariationalBottleneck,
    cross_correlation_penalty,
    gaussian_kl,
    mlp,
)

Outputs = dict[str, Tensor]

STAGE1_MODULES = (
    'camera_encoder',
    'lidar_encoder',
    'id_m_camera',
    'id_n_camera',
    'id_m_lidar',
    'id_n_lidar',
    'decoder_camera',
    'decoder_lidar',
    'head_camera',
    'head_lidar',
    'head_joint',
    'head_pair',
)
STAGE2_MODULES = (
    'cd_r',
    'cd_r_camera',
    'cd_r_lidar',
    'cd_u_camera',
    'cd_u_lidar',
    'synergy',
    'sub_heads',
    'gate',
)


class DMIL(nn.Module):
    """The DMIL network; :meth:`forward` returns every output and auxiliary loss term."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, e, h, k = cfg.feature_dim, cfg.latent_dim, cfg.hidden, cfg.num_actions
        # 1. encoders
        self.camera_encoder = CameraEncoder(cfg)
        self.lidar_encoder = lidar_encoder(cfg)
        # 2. intra-modality decomposition
        self.id_m_camera = VariationalBottleneck(d, e)
        self.id_n_camera = VariationalBottleneck(d, e)
        self.id_m_lidar = VariationalBottleneck(d, e)
        self.id_n_lidar = VariationalBottleneck(d, e)
        self.decoder_camera = mlp(2 * e, h, d)
        self.decoder_lidar = mlp(2 * e, h, d)
        self.head_camera = nn.Linear(e, k)
        self.head_lidar = nn.Linear(e, k)
        self.head_joint = mlp(2 * d, h, k)
        self.head_pair = nn.Linear(3 * e, k)  # stage-1 signal for the N's (see below)
        # 3. consistency decomposition
        self.cd_r = VariationalBottleneck(2 * e, e)
        self.cd_r_camera = VariationalBottleneck(e, e)
        self.cd_r_lidar = VariationalBottleneck(e, e)
        self.cd_u_camera = VariationalBottleneck(e, e)
        self.cd_u_lidar = VariationalBottleneck(e, e)
        # 4. synergy fusion from the N's
        self.synergy = mlp(3 * e, h, e)
        # 5. sub-prediction heads and gate
        self.sub_heads = nn.ModuleList([nn.Linear(e, k) for _ in range(4)])
        self.gate = mlp(4 * e, gate_width(h), 4)
        self.stage = 3

    # -- stages -------------------------------------------------------------------------------
    def set_stage(self, stage: int) -> None:
        """Stage 1: only ID trains; 2: stage-1 modules frozen (eval mode); 3: everything."""
        self.stage = stage
        self.train()
        for name in STAGE1_MODULES:
            module: nn.Module = getattr(self, name)
            module.requires_grad_(stage != 2)
            if stage == 2:
                module.eval()
        for name in STAGE2_MODULES:
            getattr(self, name).requires_grad_(stage != 1)

    # -- forward ------------------------------------------------------------------------------
    def encode(self, image: Tensor, lidar: Tensor) -> tuple[Tensor, Tensor]:
        return self.camera_encoder(image), self.lidar_encoder(lidar)  # (B, D) each

    def forward(self, image: Tensor, lidar: Tensor) -> Outputs:
        z1, z2 = self.encode(image, lidar)
        return self.forward_features(z1, z2)

    def forward_features(self, z1: Tensor, z2: Tensor) -> Outputs:
        """Everything after the encoders (stage 2 runs this on cached Z's)."""
        out: Outputs = {'feat_camera': z1, 'feat_lidar': z2}
        # 2. ID
        # the ID losses reach the encoders scaled by id_encoder_grad: the encoders are shaped
        # mainly by the joint head, so unimodal shortcuts do not crowd out synergy features
        g = self.cfg.id_encoder_grad
        scale = self.training and g < 1.0
        z1_id = z1 * g + z1.detach() * (1.0 - g) if scale else z1  # (B, D), same values
        z2_id = z2 * g + z2.detach() * (1.0 - g) if scale else z2
        m1, n1 = self.id_m_camera(z1_id), self.id_n_camera(z1_id)
        m2, n2 = self.id_m_lidar(z2_id), self.id_n_lidar(z2_id)
        out['logits_camera'] = self.head_camera(m1.sample)  # (B, K)
        out['logits_lidar'] = self.head_lidar(m2.sample)  # (B, K)
        out['logits_joint'] = self.head_joint(torch.cat([z1, z2], dim=1))  # (B, K)
        # the N's are "kept for synergy": a linear head on [N1, N2, N1 * N2] gives them the
        # joint task in stage 1, so they carry what only the pair of sensors decides. Its
        # gradient reaches the encoders scaled by pair_encoder_grad (default: id_encoder_grad);
        # when the two differ, the pair head reads its own draw of the same N layers on Z
        # scaled by pair_encoder_grad (values as above, only the gradient path differs)
        gp = self.cfg.pair_encoder_grad
        p1, p2 = n1, n2
        if self.training and self.stage != 2 and gp is not None and gp != g:
            z1_p = z1 * gp + z1.detach() * (1.0 - gp)  # (B, D), same values as z1
            z2_p = z2 * gp + z2.detach() * (1.0 - gp)
            p1, p2 = self.id_n_camera(z1_p), self.id_n_lidar(z2_p)
        pair = torch.cat([p1.sample, p2.sample, p1.sample * p2.sample], dim=1)  # (B, 3E)
        out['logits_pair'] = self.head_pair(pair)  # (B, K)
        rec1 = self.decoder_camera(torch.cat([m1.sample, n1.sample], dim=1))  # (B, D)
        rec2 = self.decoder_lidar(torch.cat([m2.sample, n2.sample], dim=1))  # (B, D)
        out['aux_id_kl'] = (
            m1.kl_to_prior() + n1.kl_to_prior() + m2.kl_to_prior() + n2.kl_to_prior()
        ) / 4
        err1 = (rec1 - z1.detach()).square().mean()
        err2 = (rec2 - z2.detach()).square().mean()
        out['aux_recon'] = (err1 + err2) / 2
        if self.stage == 1 and self.training:
            return out
        # 3. CD: R from both task-relevant means, aligned with each modality's own R posterior
        r: Gaussian = self.cd_r(torch.cat([m1.mu, m2.mu], dim=1))
        r1: Gaussian = self.cd_r_camera(m1.mu)
        r2: Gaussian = self.cd_r_lidar(m2.mu)
        u1: Gaussian = self.cd_u_camera(m1.sample)
        u2: Gaussian = self.cd_u_lidar(m2.sample)
        out['aux_cd_kl'] = (r.kl_to_prior() + u1.kl_to_prior() + u2.kl_to_prior()) / 3
        out['aux_align'] = (gaussian_kl(r, r1) + gaussian_kl(r, r2)) / 2
        out['aux_decouple'] = (
            cross_correlation_penalty(u1.sample, r.sample)
            + cross_correlation_penalty(u2.sample, r.sample)
        ) / 2
        # 4. synergy fusion
        s = self.synergy(torch.cat([n1.sample, n2.sample, n1.sample * n2.sample], dim=1))
        # 5. sub-predictions and gate
        comps = [r.sample, u1.sample, u2.sample, s]  # 4 x (B, E)
        sub_logits = torch.stack(
            [head(c) for head, c in zip(self.sub_heads, comps, strict=True)], dim=1
        )  # (B, 4, K)
        gate_logits = self.gate(torch.cat(comps, dim=1).detach())  # (B, 4)
        gates = torch.softmax(gate_logits, dim=1)  # (B, 4)
        sub_probs = torch.softmax(sub_logits, dim=2)  # (B, 4, K)
        out['sub_logits'] = sub_logits
        out['sub_probs'] = sub_probs
        out['gate_logits'] = gate_logits
        out['gates'] = gates
        out['probs'] = (gates.unsqueeze(2) * sub_probs).sum(dim=1)  # (B, K)
        out['probs_camera'] = torch.softmax(out['logits_camera'], dim=1)
        out['probs_lidar'] = torch.softmax(out['logits_lidar'], dim=1)
        out['probs_joint'] = torch.softmax(out['logits_joint'], dim=1)
        return out
