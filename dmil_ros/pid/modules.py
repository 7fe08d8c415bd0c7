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

"""The sample-level estimators' ONNX-exportable torch modules.

The estimators themselves (:class:`~dmil_ros.pid.lsmi.LSMI`,
:class:`~dmil_ros.pid.broja_local.BROJALocal`, :class:`~dmil_ros.pid.knife.Mixtures`) fit and
evaluate in numpy, so the audit and the library run without torch. The trainer's export composes
these modules into the model's graph (``pid_lsmi``, ``pid_broja``: dmil_ros.train.pid_heads); each
one is built from a fitted estimator and computes the same formula as the estimator's numpy
evaluation (tests compare the two, and the ONNX exports against both):

- :class:`KNIFE`: :meth:`Mixtures.log_components <dmil_ros.pid.knife.Mixtures.log_components>`
  and ``bits`` (``KNIFE.from_mixtures(fit_mixtures(...))``);
- :class:`LSMIDensities`, :func:`lsmi_terms` / :class:`LSMITerms`: LSMI's densities and terms;
- :class:`BROJALocalModule`: BROJA-local terms by nearest-centroid lookup.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from dmil_ros.pid.broja_local import FLOOR
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.knife import Mixtures

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    'KNIFE',
    'BROJALocalModule',
    'LSMIDensities',
    'LSMITerms',
    'broja_local_terms',
    'evaluate_chunked',
    'lsmi_terms',
]

_LN2 = math.log(2.0)


class KNIFE(nn.Module):
    """G Gaussian-kernel mixtures of K components over R^D; ``forward(x)`` gives (B, G) bits."""

    mask: torch.Tensor  # buffers, (D, D), (D,), (D,)
    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_groups: int, n_components: int, dim: int) -> None:
        super().__init__()
        if min(n_groups, n_components, dim) < 1:
            msg = f'KNIFE: sizes must be positive, got G={n_groups}, K={n_components}, D={dim}'
            raise PIDInputError(msg)
        self.n_groups = n_groups
        self.n_components = n_components
        self.dim = dim
        eye = torch.eye(dim).expand(n_groups, n_components, dim, dim)
        self.means = nn.Parameter(torch.zeros(n_groups, n_components, dim))  # (G, K, D)
        self.prec_chol = nn.Parameter(eye.clone())  # (G, K, D, D), upper triangular
        self.log_weights = nn.Parameter(
            torch.full((n_groups, n_components), -math.log(n_components))
        )  # (G, K)
        self.register_buffer('mask', torch.triu(torch.ones(dim, dim)))  # (D, D)
        self.register_buffer('center', torch.zeros(dim))  # (D,) c of x' = (x - c) / s
        self.register_buffer('scale', torch.ones(dim))  # (D,) s

    @classmethod
    def from_mixtures(cls, mix: Mixtures) -> KNIFE:
        """The module holding ``mix``'s parameters (float32, as exported)."""
        model = cls(mix.n_groups, mix.n_components, mix.dim)
        with torch.no_grad():
            model.means.copy_(torch.as_tensor(mix.means))
            model.prec_chol.copy_(torch.as_tensor(mix.prec_chol))
            model.log_weights.copy_(torch.as_tensor(mix.log_weights))
            model.center.copy_(torch.as_tensor(mix.center))
            model.scale.copy_(torch.as_tensor(mix.scale))
        return model

    def mixtures(self) -> Mixtures:
        """The module's parameters as a numpy :class:`~dmil_ros.pid.knife.Mixtures` (float64)."""
        with torch.no_grad():
            arrays = [
                t.detach().double().numpy().copy()
                for t in (self.means, self.prec_chol * self.mask, self.log_weights)
            ]
            return Mixtures(
                arrays[0],
                arrays[1],
                arrays[2],
                self.center.double().numpy().copy(),
                self.scale.double().numpy().copy(),
            )

    def log_components(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N_k(x) in nats, (B, G, K), for x of shape (B, D)."""
        prec = self.prec_chol * self.mask  # (G, K, D, D)
        log_w = torch.log_softmax(self.log_weights, dim=-1)  # (G, K)
        # 1. z = P^T (x' - μ), the difference taken before the product, (B, G, K, D)
        xs = (x - self.center) / self.scale  # (B, D)
        diff = xs[:, None, None, :] - self.means.unsqueeze(0)  # (B, G, K, D)
        z = torch.einsum('bgkd,gkde->bgke', diff, prec)
        # 2. log-normaliser, with the Jacobian of the standardisation
        log_det = torch.log(torch.abs(torch.diagonal(prec, dim1=-2, dim2=-1))).sum(-1)  # (G, K)
        log_norm = -0.5 * self.dim * math.log(2 * math.pi) + log_det - torch.log(self.scale).sum()
        return log_w + log_norm - 0.5 * (z * z).sum(-1)  # (B, G, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """3. h(x) = -log2 p_g(x) for each group, (B, G) bits."""
        return -torch.logsumexp(self.log_components(x), dim=-1) / _LN2


def evaluate_chunked(
    module: nn.Module, arrays: Sequence[NDArray[np.floating]], chunk: int = 8192
) -> list[NDArray[np.float64]]:
    """Run ``module`` on row chunks of float32 copies of ``arrays``; concatenate each output."""
    n = len(arrays[0])
    outs: list[list[NDArray[np.float64]]] = []
    with torch.inference_mode():
        for start in range(0, n, chunk):
            ins = [
                torch.as_tensor(np.asarray(a[start : start + chunk], np.float32)) for a in arrays
            ]
            res = module(*ins)
            res_t = res if isinstance(res, tuple) else (res,)
            if not outs:
                outs = [[] for _ in res_t]
            for lst, r in zip(outs, res_t, strict=True):
                lst.append(r.double().numpy())
    return [np.concatenate(o) for o in outs]


def lsmi_terms(  # noqa: PLR0917  (positional inputs of an exported graph)
    log_prior: torch.Tensor,
    log_p1: torch.Tensor,
    log_p2: torch.Tensor,
    log_p12: torch.Tensor,
    h1: torch.Tensor,
    h2: torch.Tensor,
    h1y: torch.Tensor,
    h2y: torch.Tensor,
    labels: torch.Tensor,
    delta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LSMI terms for the class ``labels`` of each sample; pure torch ops (ONNX-exportable).

    Inputs: natural-log probabilities ``log_prior`` (C,), ``log_p1``, ``log_p2``, ``log_p12``
    (B, C); densities in bits ``h1``, ``h2`` (B,), ``h1y``, ``h2y`` (B, C); ``labels`` (B,) int64;
    ``delta`` () bits. Returns ``raw`` and ``shifted``, each (B, 4) = r, u1, u2, s in bits (the
    steps of :mod:`dmil_ros.pid.lsmi`).
    """
    idx = labels.long().unsqueeze(1)  # (B, 1)
    lp = log_prior.gather(0, labels.long())  # (B,)
    # 1. pointwise mutual informations, bits
    i1 = (log_p1.gather(1, idx).squeeze(1) - lp) / _LN2  # (B,)
    i2 = (log_p2.gather(1, idx).squeeze(1) - lp) / _LN2
    i12 = (log_p12.gather(1, idx).squeeze(1) - lp) / _LN2
    # 2. I±_min redundancy
    a1 = h1y.gather(1, idx).squeeze(1)  # (B,)
    a2 = h2y.gather(1, idx).squeeze(1)
    r = torch.minimum(h1, h2) - torch.minimum(a1, a2)
    # 3. the rest
    u1 = i1 - r
    u2 = i2 - r
    s = i12 - r - u1 - u2
    raw = torch.stack([r, u1, u2, s], dim=1)  # (B, 4)
    # 4. the shift: +delta on r and s, -delta on u1 and u2 (no torch.tensor constant: the
    #    ONNX trace warns about those)
    d = delta.to(raw.dtype)
    return raw, torch.stack([r + d, u1 - d, u2 - d, s + d], dim=1)


class LSMIDensities(nn.Module):
    """KNIFE densities of both modalities (:meth:`dmil_ros.pid.lsmi.LSMI.densities`).

    ``forward(f1, f2)`` -> h1 (B,), h2 (B,), h1y (B, C), h2y (B, C), in bits:

    1. h(x_m|y) = -log2 p(x_m|y) for every class y, from the class-conditional mixtures;
    2. h(x_m) = -log2 Σ_y p(y) p(x_m|y), the marginal as the prior-weighted mixture of them
       (:meth:`dmil_ros.pid.lsmi.LSMI.entropies` says why).
    """

    log_prior: torch.Tensor  # buffer, (C,) natural log

    def __init__(self, c1: KNIFE, c2: KNIFE, log_prior: torch.Tensor) -> None:
        super().__init__()
        if not c1.n_groups == c2.n_groups == log_prior.numel():
            msg = (
                f'LSMIDensities: {c1.n_groups} and {c2.n_groups} class mixtures for '
                f'{log_prior.numel()} classes'
            )
            raise PIDInputError(msg)
        self.c1, self.c2 = c1, c2
        self.register_buffer('log_prior', log_prior.float())  # (C,) natural log

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h1y, h2y = self.c1(f1), self.c2(f2)  # (B, C) bits each
        h1 = -torch.logsumexp(self.log_prior - h1y * _LN2, dim=1) / _LN2  # (B,)
        h2 = -torch.logsumexp(self.log_prior - h2y * _LN2, dim=1) / _LN2
        return h1, h2, h1y, h2y

    @property
    def widths(self) -> tuple[int, int]:
        """The feature widths the densities were fitted on."""
        return self.c1.dim, self.c2.dim


class LSMITerms(nn.Module):
    """:func:`lsmi_terms` with the prior (natural log) and δ stored as buffers.

    ``forward(log_p1, log_p2, log_p12, h1, h2, h1y, h2y, labels)`` -> (raw, shifted), (B, 4) bits.
    """

    def __init__(self, log_prior: torch.Tensor, delta: float) -> None:
        super().__init__()
        self.register_buffer('log_prior', log_prior.float())  # (C,)
        self.register_buffer('delta', torch.tensor(float(delta)))

    def forward(  # noqa: PLR0917  (positional inputs of an exported graph)
        self,
        log_p1: torch.Tensor,
        log_p2: torch.Tensor,
        log_p12: torch.Tensor,
        h1: torch.Tensor,
        h2: torch.Tensor,
        h1y: torch.Tensor,
        h2y: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lp: torch.Tensor = self.log_prior  # type: ignore[assignment]
        dl: torch.Tensor = self.delta  # type: ignore[assignment]
        return lsmi_terms(lp, log_p1, log_p2, log_p12, h1, h2, h1y, h2y, labels, dl)


def broja_local_terms(
    ell: torch.Tensor,
    log2_prior: torch.Tensor,
    lp1: torch.Tensor,
    lp2: torch.Tensor,
    lp12: torch.Tensor,
) -> torch.Tensor:
    """(B, 4) = r, u1, u2, s in bits from per-sample ℓ, log2 p(y), log2 p(y|x1), ... (all (B,))."""
    r = lp1 + lp2 - log2_prior - ell
    return torch.stack([r, ell - lp2, ell - lp1, lp12 - ell], dim=1)


class BROJALocalModule(nn.Module):
    """Exportable per-sample BROJA-local terms (``BROJALocal.module`` of dmil_ros.pid.broja_local).

    Buffers: per modality an affine map (standardise + PCA) ``w_m`` (D_m, P_m), ``b_m`` (P_m,) and
    centroids (K_m, P_m); the table ℓ (K1, K2, C) and histogram tables log2 p(y|c1) (K1, C),
    log2 p(y|c2) (K2, C), log2 p(y|c1,c2) (K1, K2, C), log2 p(y) (C,), all bits.

    ``forward(f1, f2, labels)`` -> (B, 4) r, u1, u2, s (histogram conditionals), or with
    ``forward(f1, f2, labels, log_p1, log_p2, log_p12)`` (natural-log class probabilities (B, C) of
    the discriminators) the discriminators replace the histogram conditionals.
    """

    def __init__(self, arrays: dict[str, NDArray[np.floating]]) -> None:
        super().__init__()
        for k, v in arrays.items():
            self.register_buffer(k, torch.as_tensor(np.asarray(v)).float())

    def _buf(self, name: str) -> torch.Tensor:
        t = getattr(self, name)
        if not isinstance(t, torch.Tensor):  # pragma: no cover - buffers are tensors
            raise TypeError(name)
        return t

    def assign(self, f: torch.Tensor, m: int) -> torch.Tensor:
        """Nearest-centroid cluster index (B,) of modality m's features f (B, D_m)."""
        z = f @ self._buf(f'w{m}') + self._buf(f'b{m}')  # (B, P)
        c = self._buf(f'centroids{m}')  # (K, P)
        d = (c * c).sum(1).unsqueeze(0) - 2.0 * (z @ c.T)  # (B, K), |z|² dropped
        return torch.argmin(d, dim=1)

    def forward(  # noqa: PLR0917  (positional inputs of an exported graph)
        self,
        f1: torch.Tensor,
        f2: torch.Tensor,
        labels: torch.Tensor,
        log_p1: torch.Tensor | None = None,
        log_p2: torch.Tensor | None = None,
        log_p12: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c1 = self.assign(f1, 1)  # (B,)
        c2 = self.assign(f2, 2)
        y = labels.long()
        ell_t = self._buf('ell')
        k2, nc = ell_t.shape[1], ell_t.shape[2]
        flat = (c1 * k2 + c2) * nc + y  # (B,)
        ell = ell_t.reshape(-1).gather(0, flat)  # (B,)
        lpy = self._buf('log2_prior').gather(0, y)
        lp1 = self._buf('lp1').reshape(-1).gather(0, c1 * nc + y)
        lp2 = self._buf('lp2').reshape(-1).gather(0, c2 * nc + y)
        if log_p1 is None or log_p2 is None or log_p12 is None:
            lp12 = self._buf('lp12').reshape(-1).gather(0, flat)
        else:
            # a label the table never saw with a sample's cluster: s = 0 as in the table (the
            # discriminators' finite log p(y|x1,x2) against ℓ ~ -60 read as ~50 bits)
            impossible = (lp1 <= FLOOR) | (lp2 <= FLOOR)  # (B,)
            idx = y.unsqueeze(1)
            lp1 = log_p1.gather(1, idx).squeeze(1) / _LN2
            lp2 = log_p2.gather(1, idx).squeeze(1) / _LN2
            lp12 = log_p12.gather(1, idx).squeeze(1) / _LN2
            ell = torch.where(impossible, lp12, ell)
        return broja_local_terms(ell, lpy, lp1, lp2, lp12)
