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

"""DMIL and baselines: shapes, stage freezing, circular padding, information penalties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.model import (
    DMIL,
    KINDS,
    LIDAR_ENCODERS,
    LossWeights,
    ModelConfig,
    ModelConfigError,
    build_model,
    dmil_loss,
)
from dmil_ros.model.dmil import STAGE1_MODULES, STAGE2_MODULES
from dmil_ros.model.encoders import CircularConv, PointEncoder
from dmil_ros.model.layers import Gaussian, cross_correlation_penalty, gaussian_kl

SMALL = {'camera_channels': (4, 8, 8), 'lidar_channels': (4, 8, 8), 'feature_dim': 16,
         'latent_dim': 4, 'hidden': 16}  # fmt: skip


def _inputs(b: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 3, 48, 64, generator=g), torch.rand(b, 2, 16, 180, generator=g)


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('encoder', LIDAR_ENCODERS)
def test_output_shapes_and_probabilities(kind: str, encoder: str) -> None:
    model = build_model(ModelConfig(kind=kind, lidar_encoder=encoder, **SMALL)).eval()
    out = model(*_inputs())
    assert out['probs'].shape == (6, 4)
    torch.testing.assert_close(out['probs'].sum(1), torch.ones(6))
    for key in ('probs_camera', 'probs_lidar'):
        torch.testing.assert_close(out[key].sum(1), torch.ones(6))
    if kind == 'dmil':
        assert out['gates'].shape == (6, 4)
        assert out['sub_probs'].shape == (6, 4, 4)
        torch.testing.assert_close(out['gates'].sum(1), torch.ones(6))
        # the prediction is the gate-weighted mixture of the sub-predictions
        mix = (out['gates'].unsqueeze(2) * out['sub_probs']).sum(1)
        torch.testing.assert_close(out['probs'], mix)


def test_ensemble_is_mean_of_members() -> None:
    model = build_model(ModelConfig(kind='ensemble', **SMALL)).eval()
    out = model(*_inputs())
    torch.testing.assert_close(out['probs'], (out['probs_camera'] + out['probs_lidar']) / 2)


def test_stage2_freezes_stage1_modules() -> None:
    torch.manual_seed(0)
    model = DMIL(ModelConfig(**SMALL))
    model.set_stage(2)
    assert not model.camera_encoder.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    image, lidar = _inputs(8)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    loss, _ = dmil_loss(model(image, lidar), y, y, 2, LossWeights())
    loss.backward()
    opt.step()
    after = model.state_dict()
    for k, v in before.items():
        if k.startswith(tuple(n + '.' for n in STAGE1_MODULES)):
            assert torch.equal(v, after[k]), k
    changed = [
        k for k in before if k.startswith(STAGE2_MODULES) and not torch.equal(before[k], after[k])
    ]
    assert changed


def test_stage1_trains_encoders_not_gate() -> None:
    model = DMIL(ModelConfig(**SMALL))
    model.set_stage(1)
    assert all(p.requires_grad for p in model.camera_encoder.parameters())
    assert not any(p.requires_grad for p in model.gate.parameters())


def _encoder_grad(model: DMIL, key: str) -> float:
    """Sum of |d sum(out[key]) / d encoder weights| in training mode, stage 1."""
    model.set_stage(1)
    model.zero_grad()
    out = model(*_inputs())
    out[key].sum().backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for p in model.camera_encoder.parameters() if p.grad is not None]
    grads += [p.grad for p in model.lidar_encoder.parameters() if p.grad is not None]
    return float(sum(g.abs().sum() for g in grads))


@pytest.mark.parametrize(('id_grad', 'pair_grad'), [(0.0, None), (0.0, 1.0), (1.0, 0.0)])
def test_pair_and_id_encoder_gradients(id_grad: float, pair_grad: float | None) -> None:
    """The pair head reaches the encoders iff pair_encoder_grad (default id_encoder_grad) > 0;
    the unimodal heads iff id_encoder_grad > 0; the joint head always does."""
    torch.manual_seed(0)
    model = DMIL(ModelConfig(id_encoder_grad=id_grad, pair_encoder_grad=pair_grad, **SMALL))
    pair = id_grad if pair_grad is None else pair_grad
    assert (_encoder_grad(model, 'logits_pair') > 0) == (pair > 0)
    assert (_encoder_grad(model, 'logits_camera') > 0) == (id_grad > 0)
    assert _encoder_grad(model, 'logits_joint') > 0
    # eval mode: the outputs are the same function of the inputs whatever the gradient path
    model.eval()
    ref = DMIL(ModelConfig(id_encoder_grad=id_grad, **SMALL)).eval()
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        out, out_ref = model(*_inputs()), ref(*_inputs())
    for key in ('logits_pair', 'probs'):
        torch.testing.assert_close(out[key], out_ref[key])


@settings(max_examples=15, deadline=None)
@given(shift=st.integers(0, 14), seed=st.integers(0, 100))
def test_circular_conv_is_azimuth_equivariant(shift: int, seed: int) -> None:
    """Rolling the range image by k strides rolls the output by k (no seam at +-180 deg)."""
    torch.manual_seed(seed)
    conv = CircularConv(2, 3, (3, 5), (2, 3))
    x = torch.randn(1, 2, 16, 180)
    y = conv(x)
    y_rolled = conv(torch.roll(x, shifts=3 * shift, dims=-1))
    torch.testing.assert_close(y_rolled, torch.roll(y, shifts=shift, dims=-1))


def test_point_encoder_ignores_empty_cells() -> None:
    enc = PointEncoder(ModelConfig(lidar_encoder='point', **SMALL)).eval()
    x = torch.zeros(1, 2, 16, 180)
    x[0, 0, 3:9, 40:60] = 0.4
    y = x.clone()
    y[0, 1, 0:2, :] = 7.0  # intensity where there is no return
    torch.testing.assert_close(enc(x), enc(y))


def test_kl_terms_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    mu_p, lv_p, mu_q, lv_q = (torch.randn(5, 3, generator=g) for _ in range(4))
    p, q = Gaussian(mu_p, lv_p, mu_p), Gaussian(mu_q, lv_q, mu_q)
    dist = torch.distributions
    ref_pq = (
        dist.kl_divergence(
            dist.Normal(mu_p, (0.5 * lv_p).exp()), dist.Normal(mu_q, (0.5 * lv_q).exp())
        )
        .sum(1)
        .mean()
    )
    torch.testing.assert_close(gaussian_kl(p, q), ref_pq)
    ref_prior = (
        dist.kl_divergence(
            dist.Normal(mu_p, (0.5 * lv_p).exp()), dist.Normal(torch.zeros(3), torch.ones(3))
        )
        .sum(1)
        .mean()
    )
    torch.testing.assert_close(p.kl_to_prior(), ref_prior)


def test_cross_correlation_penalty_matches_gaussian_mi() -> None:
    """For weakly correlated Gaussians the penalty approaches I = -1/2 log(1 - rho^2) (nats)."""
    rng = np.random.default_rng(0)
    n, rho = 200_000, 0.2
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    pen = float(cross_correlation_penalty(torch.tensor(a[:, None]), torch.tensor(b[:, None])))
    mi = -0.5 * np.log(1 - rho**2)
    assert abs(pen - mi) < 0.1 * mi
    indep = float(cross_correlation_penalty(torch.randn(50_000, 4), torch.randn(50_000, 4)))
    assert indep < 1e-3


def test_model_config_round_trip_and_errors() -> None:
    cfg = ModelConfig(kind='joint', latent_dim=8)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelConfigError, match='kind'):
        ModelConfig(kind='late')
    with pytest.raises(ModelConfigError, match='latent_dim'):
        ModelConfig(latent_dim=0)
    with pytest.raises(ModelConfigError, match='unknown keys'):
        ModelConfig.from_dict({'latent': 3})
    with pytest.raises(ModelConfigError, match='pair_encoder_grad'):
        ModelConfig(pair_encoder_grad=1.5)
    cfg = ModelConfig(pair_encoder_grad=1.0)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_interaction_profile_names_the_needed_component() -> None:
    from dmil_ros.model.losses import interaction_profile

    y = torch.tensor([0, 1, 2, 3])
    sure, chance = torch.eye(4), torch.full((4, 4), 0.25)
    # frame 0: both sensors sure; 1: camera only; 2: LiDAR only; 3: neither
    cam = torch.stack([sure[0], sure[1], chance[2], chance[3]])
    lid = torch.stack([sure[0], chance[1], sure[2], chance[3]])
    out = {'probs_camera': cam, 'probs_lidar': lid}
    profile = interaction_profile(out, y, LossWeights())
    torch.testing.assert_close(profile.sum(1), torch.ones(4))
    assert profile.argmax(1).tolist() == [0, 1, 2, 3]
    # analytic: a = sigmoid((p - tau) / T) with tau 0.75, T 0.05 -> sure: sigmoid(5), chance:
    # sigmoid(-10); frame 0 = a_sure^2, frame 1 = a_sure (1 - a_chance), ...
    hi, lo = torch.sigmoid(torch.tensor(5.0)), torch.sigmoid(torch.tensor(-10.0))
    expected = torch.stack([hi * hi, hi * (1 - lo), hi * (1 - lo), (1 - lo) ** 2])
    torch.testing.assert_close(profile.max(1).values, expected)


def _stage2(b: int = 6) -> tuple[DMIL, dict[str, torch.Tensor], torch.Tensor]:
    """A stage-2 DMIL (stage 1 frozen), its outputs on a batch, and labels 0, 1, 2, 3, 0, ..."""
    torch.manual_seed(0)
    model = DMIL(ModelConfig(**SMALL))
    model.set_stage(2)
    return model, model(*_inputs(b)), torch.arange(b) % 4


def test_the_gate_does_not_train_the_components() -> None:
    """The gate reads the components detached: it learns which component to trust, and a loss
    on the gate alone moves the gate only, never the components it weighs."""
    model, out, _ = _stage2()
    model.zero_grad()
    out['gates'][:, 3].sum().backward()  # type: ignore[no-untyped-call]
    for name in ('cd_r', 'cd_u_camera', 'cd_u_lidar', 'synergy', 'sub_heads'):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is None or not g.any() for g in grads), name
    assert any(p.grad is not None and p.grad.any() for p in model.gate.parameters())


def test_gate_profile_term_is_the_cross_entropy_to_the_profile() -> None:
    """gate_profile * CE(gate_i, pi_i): minimised by the gate the profile names (>= 0, torch's
    soft-target cross-entropy as the reference)."""
    from dmil_ros.model.losses import interaction_profile

    _, out, y = _stage2()
    w = LossWeights(gate_profile=2.0)
    _, parts = dmil_loss(out, y, torch.full_like(y, -1), 2, w)
    profile = interaction_profile(out, y, w)
    want = 2.0 * float(F.cross_entropy(out['gate_logits'].detach(), profile))
    assert parts['gate_profile'] == pytest.approx(want, rel=1e-5)
    assert parts['gate_profile'] > 0.0


@pytest.mark.parametrize(('component', 'kappa'), [(0, 0.0), (1, 0.5), (2, 0.5), (3, 1.0)])
def test_complexity_charges_synergy_most_and_redundancy_nothing(
    component: int, kappa: float
) -> None:
    """complexity * sum_c g_c kappa_c, kappa = (0, 1/2, 1/2, 1) for (R, U_cam, U_lid, S)."""
    _, out, y = _stage2()
    out = {**out, 'gates': F.one_hot(torch.full_like(y, component), 4).float()}
    _, parts = dmil_loss(out, y, torch.full_like(y, -1), 2, LossWeights(complexity=2.0))
    assert parts['complexity'] == pytest.approx(2.0 * kappa)


@pytest.mark.parametrize('floor', [0.0, 0.1, 0.5])
def test_sub_head_weights_are_normalised_by_one_plus_the_floor(floor: float) -> None:
    """sub * sum_c mean_i (floor + pi_ic) CE(head_c, y_i) / (1 + floor): with every sub-head
    at chance (CE = ln 4 for each) and profiles summing to 1, the term is
    sub * ln 4 * (1 + 4 floor) / (1 + floor) whatever the profile."""
    _, out, y = _stage2()
    out = {**out, 'sub_logits': torch.zeros_like(out['sub_logits'])}
    w = LossWeights(sub=1.5, sub_floor=floor)
    _, parts = dmil_loss(out, y, torch.full_like(y, -1), 2, w)
    want = 1.5 * math.log(4) * (1 + 4 * floor) / (1 + floor)
    assert parts['sub'] == pytest.approx(want, rel=1e-6)
