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

"""BATCH: dataset-level BROJA PID of continuous features by mini-batch Sinkhorn couplings.

Liang, Cheng, Fan, Ling, Nie, Chen, Deng, Allen, Auerbach, Mahmood, Salakhutdinov, Morency,
"Quantifying & Modeling
Multimodal Interactions: An Information Decomposition Framework", NeurIPS 2023 (methods.md §2).

For a mini-batch of m samples, with classifiers p(y|x1), p(y|x2), p(y|x1,x2) and encoders
f1, f2: R^D -> R^{C x E} (numbered as computed):

1. log A[i, j, y] = f1(x1_i)[y] · f2(x2_j)[y] / sqrt(E)
2. Sinkhorn-Knopp (log domain), per class y: rescale rows to r_i^y = p(y|x1_i) / m and columns to
   c_j^y = p(y|x2_j) / m. Row and column targets of a class must carry the same mass, so both are
   rescaled to the average of the two classifiers' class masses on the batch. The rescalings
   alternate until the rows are within :data:`SINKHORN_TOL` (total variation) of their
   targets, at most ``sinkhorn_iters`` times; the error left is reported, and warned about above
   the tolerance (our stopping rule: methods.md gives none, and a fixed few steps let the
   trained encoders leave Δp, :func:`sinkhorn_coupling`). When the masses agree (the
   population limit) q̃(i, j, y) lies in Δp of the batch (the pairwise marginals of its
   empirical measure with the classifiers); when they differ, q̃'s marginals are off by the
   rescaling and step 4's R = I(X1;Y) - U1 mixes the classifier's I(X1;Y) with q̃'s U1 (a
   bias of the order of the mass mismatch; the BATCH paper does not say how it balances them).
3. Train f1, f2 to minimise I_q̃(X1,X2;Y) (the BROJA objective) by Adam.
4. Read off, averaged over evaluation batches (random, as in training: consecutive samples of a
   recording share a scene and a label, and a batch of one class carries no information):
   U1 = I_q̃(X1;Y|X2),  U2 = I_q̃(X2;Y|X1),  R = I(X1;Y) - U1,
   S = I_p(X1,X2;Y) - I_q̃(X1,X2;Y),
   with I(X1;Y) = mean_i KL(p(.|x1_i) || p̄1) and I_p(X1,X2;Y) = mean_i KL(p(.|x_i) || p̄12).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from dmil_ros.pid.checks import check_seed, count, in_range
from dmil_ros.pid.discriminators import seeded_init, train_classifier
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.lsmi import LSMIConfig, check_inputs, check_widths, class_count, external_probs

__all__ = ['BATCH', 'BATCHResult', 'batch_atoms', 'sinkhorn_coupling']

logger = logging.getLogger(__name__)

_LN2 = math.log(2.0)
_EPS = 1e-7
SINKHORN_TOL = 1e-3
"""Total variation Sinkhorn leaves between q̃'s row marginal and its target (0.1% of the mass)."""


@dataclass(frozen=True)
class BATCHResult:
    """Dataset-level atoms and informations in bits."""

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    mi_1: float
    mi_2: float
    mi_12: float
    marginal_error: float = 0.0  # largest total variation of q̃'s rows off Δp (a batch's)


def sinkhorn_coupling(
    log_a: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor,
    n_iter: int,
    tol: float = SINKHORN_TOL,
) -> tuple[torch.Tensor, float]:
    """Step 2: q̃ (m, m, C) from log A (m, m, C), p(y|x1_i) (m, C), p(y|x2_j) (m, C), and its
    marginal error.

    Row and column rescalings alternate until the row marginal q̃(i, y) is within ``tol`` of
    its target in total variation (sum over i, y of the absolute differences; the columns are
    exact after each column step), at most ``n_iter`` times; that distance is returned. A
    fixed, small number of steps is not enough: trained against I_q̃, the encoders learn an A
    whose 20-step coupling leaves Δp (rows 51% off on a 4-family mixture, I_q̃(X1,X2;Y) below
    I(X1;Y)) and every atom moves by ~0.25 bits. Mass, not a ratio, is measured: a row whose
    target is a clamped zero (1e-7 / m) barely moves q̃ however far off it is.
    """
    m = p1.shape[0]
    r = p1.clamp_min(_EPS) / m  # (m, C)
    c = p2.clamp_min(_EPS) / m
    mass = 0.5 * (r.sum(0) + c.sum(0))  # (C,)
    log_r = torch.log(r / r.sum(0) * mass)  # (m, C)
    log_c = torch.log(c / c.sum(0) * mass)
    target = torch.exp(log_r)  # (m, C)
    la = log_a

    def rows_off(la: torch.Tensor) -> tuple[torch.Tensor, float]:
        log_rows = torch.logsumexp(la, dim=1)  # (m, C): log q̃(i, y)
        return log_rows, float((torch.exp(log_rows.detach()) - target).abs().sum())

    log_rows, error = rows_off(la)
    for _ in range(n_iter):
        if error < tol:
            break
        la = la - (log_rows - log_r).unsqueeze(1)  # rows i
        la = la - (torch.logsumexp(la, dim=0) - log_c).unsqueeze(0)  # columns j
        log_rows, error = rows_off(la)
    return torch.exp(la), error


def batch_atoms(q: torch.Tensor, p1: torch.Tensor, p12: torch.Tensor) -> dict[str, torch.Tensor]:
    """Step 4 on one batch (nats): q̃ (m, m, C), classifiers p(y|x1) and p(y|x1,x2) (m, C)."""
    q = q / q.sum()
    q_ij = q.sum(2, keepdim=True)  # (m, m, 1)
    q_y = q.sum((0, 1))  # (C,)
    q_iy = q.sum(1)  # (m, C)
    q_jy = q.sum(0)  # (m, C)
    q_i = q_iy.sum(1)  # (m,)
    q_j = q_jy.sum(1)
    lq = torch.log(q.clamp_min(1e-30))
    lq_ij = torch.log(q_ij.clamp_min(1e-30))
    i12 = (q * (lq - lq_ij - torch.log(q_y.clamp_min(1e-30)))).sum()
    u1 = (
        q
        * (
            lq
            + torch.log(q_j.clamp_min(1e-30))[None, :, None]
            - lq_ij
            - torch.log(q_jy.clamp_min(1e-30))[None]
        )
    ).sum()
    u2 = (
        q
        * (
            lq
            + torch.log(q_i.clamp_min(1e-30))[:, None, None]
            - lq_ij
            - torch.log(q_iy.clamp_min(1e-30))[:, None]
        )
    ).sum()

    def _mi(p: torch.Tensor) -> torch.Tensor:
        p = p.clamp_min(1e-12)
        pbar = p.mean(0, keepdim=True)
        return (p * (torch.log(p) - torch.log(pbar))).sum(1).mean()

    mi1 = _mi(p1)
    mi12 = _mi(p12)
    return {'i_q': i12, 'u1': u1, 'u2': u2, 'mi_1': mi1, 'mi_12': mi12}


class _Encoder(nn.Module):
    def __init__(self, dim: int, hidden: int, n_classes: int, embed: int) -> None:
        super().__init__()
        self.n_classes, self.embed = n_classes, embed
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes * embed)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.reshape(-1, self.n_classes, self.embed)  # (B, C, E)


class BATCH:
    """The BATCH estimator; ``fit(f1, f2, labels)`` then ``estimate(f1, f2)``.

    Encoders train for at most ``epochs`` epochs and stop once the epoch-mean I_q̃ changes by
    less than ``tol`` bits (``epochs_run`` records how many ran). The classifiers (unless
    supplied) train as LSMI's discriminators do
    (:func:`dmil_ros.pid.discriminators.train_classifier`, early stopping on held-out
    cross-entropy), so neither estimator is handicapped.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 16,
        hidden: int = 64,
        batch_size: int = 256,
        epochs: int = 10,
        lr: float = 5e-3,
        sinkhorn_iters: int = 100,
        classifier_epochs: int = 30,
        seed: int = 0,
        num_threads: int = 1,
        tol: float = 0.005,
    ) -> None:
        sizes = {
            'embed_dim': embed_dim,
            'hidden': hidden,
            'batch_size': batch_size,
            'epochs': epochs,
            'sinkhorn_iters': sinkhorn_iters,
            'num_threads': num_threads,
        }
        for name, size in sizes.items():
            count(f'BATCH.{name}', size)
        count('BATCH.classifier_epochs', classifier_epochs, minimum=0)
        check_seed('BATCH.seed', seed, derived=2)  # seed + 1, seed + 2: classifiers
        # lr 0 trained nothing and returned the initial encoders' atoms as an estimate
        in_range('BATCH.lr', lr, lambda v: v > 0)
        in_range('BATCH.tol', tol, lambda v: v >= 0)
        self.tol = tol
        self.epochs_run = 0
        self.embed_dim, self.hidden, self.batch_size = embed_dim, hidden, batch_size
        self.epochs, self.lr, self.sinkhorn_iters = epochs, lr, sinkhorn_iters
        self.classifier_epochs, self.seed, self.num_threads = classifier_epochs, seed, num_threads
        self.fit_marginal_error = 0.0  # Sinkhorn's largest, over the training batches of fit()
        self.encoders: tuple[_Encoder, _Encoder] | None = None
        self.classifiers: tuple[nn.Module, nn.Module, nn.Module] | None = None
        self.n_classes = 0
        self.mean = (np.zeros(0), np.zeros(0))
        self.std = (np.ones(0), np.ones(0))

    def _probs(
        self,
        f1: NDArray[np.float64],
        f2: NDArray[np.float64],
        probs: tuple[NDArray[np.floating] | None, ...],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        given = external_probs(probs, len(f1), self.n_classes)
        if given is not None:
            p1, p2, p12 = (torch.as_tensor(a, dtype=torch.float32) for a in given)
            return p1, p2, p12
        if self.classifiers is None:
            raise PIDInputError('BATCH: fitted with external probabilities; pass probs_1/2/12')
        c1, c2, c12 = self.classifiers
        x1 = torch.as_tensor(f1, dtype=torch.float32)
        x2 = torch.as_tensor(f2, dtype=torch.float32)
        with torch.inference_mode():
            return (
                torch.softmax(c1(x1), -1),
                torch.softmax(c2(x2), -1),
                torch.softmax(c12(torch.cat([x1, x2], 1)), -1),
            )

    def _norm(self, f: NDArray[np.float64], m: int) -> torch.Tensor:
        return torch.as_tensor((f - self.mean[m]) / self.std[m], dtype=torch.float32)

    def fit(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        labels: NDArray[np.integer],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
        n_classes: int | None = None,
    ) -> BATCH:
        f1, f2, y = check_inputs(features_1, features_2, labels)
        if y is None:
            raise PIDInputError('labels: required to fit')
        self.n_classes = c = class_count(y, n_classes)
        own = all(p is None for p in (probs_1, probs_2, probs_12))
        if own and self.classifier_epochs == 0:
            # untrained classifiers gave an estimate of nothing (UNQ1's U1 = 1 bit read as 0)
            msg = 'BATCH.classifier_epochs: 0 trains no classifier; pass probs_1/2/12 or train'
            raise PIDInputError(msg)
        prev = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            if own:
                # the same lean discriminator training as LSMI's (LSMIConfig defaults)
                lean = LSMIConfig()

                def clf(x: NDArray[np.float64], seed: int) -> nn.Module:
                    return train_classifier(
                        x,
                        y,
                        c,
                        hidden=self.hidden,
                        epochs=self.classifier_epochs,
                        batch_size=lean.batch_size,
                        lr=lean.lr,
                        patience=lean.patience,
                        val_fraction=lean.val_fraction,
                        tol=lean.tol,
                        seed=seed,
                    )

                self.classifiers = (
                    clf(f1, self.seed),
                    clf(f2, self.seed + 1),
                    clf(np.concatenate([f1, f2], 1), self.seed + 2),
                )
            p1, p2, _ = self._probs(f1, f2, (probs_1, probs_2, probs_12))
            self.mean = (f1.mean(0), f2.mean(0))
            self.std = (f1.std(0) + 1e-9, f2.std(0) + 1e-9)
            x1, x2 = self._norm(f1, 0), self._norm(f2, 1)
            with seeded_init(self.seed):
                enc = (
                    _Encoder(f1.shape[1], self.hidden, c, self.embed_dim),
                    _Encoder(f2.shape[1], self.hidden, c, self.embed_dim),
                )
            opt = torch.optim.Adam(
                [*enc[0].parameters(), *enc[1].parameters()], lr=self.lr, fused=True
            )
            gen = torch.Generator().manual_seed(self.seed)
            n, m = len(f1), min(self.batch_size, len(f1))
            prev_loss = math.inf
            self.epochs_run = 0
            self.fit_marginal_error = 0.0
            for _ in range(self.epochs):
                perm = torch.randperm(n, generator=gen)
                total, count = 0.0, 0
                for start in range(0, n - m + 1, m):
                    b = perm[start : start + m]
                    q, error = self._coupling(enc, x1[b], x2[b], p1[b], p2[b])
                    self.fit_marginal_error = max(self.fit_marginal_error, error)
                    loss = batch_atoms(q, p1[b], p1[b])['i_q']
                    opt.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call]
                    opt.step()
                    total, count = total + float(loss.detach()) / _LN2, count + 1
                self.epochs_run += 1
                # converged: the epoch-mean I_q̃ (bits) moved less than tol
                mean_loss = total / max(count, 1)
                if abs(prev_loss - mean_loss) < self.tol:
                    break
                prev_loss = mean_loss
            self.encoders = enc
        finally:
            torch.set_num_threads(prev)
        return self

    def _coupling(
        self,
        enc: tuple[_Encoder, _Encoder],
        x1: torch.Tensor,
        x2: torch.Tensor,
        p1: torch.Tensor,
        p2: torch.Tensor,
    ) -> tuple[torch.Tensor, float]:
        e1 = enc[0](x1)  # (m, C, E)
        e2 = enc[1](x2)
        log_a = torch.einsum('ice,jce->ijc', e1, e2) / math.sqrt(self.embed_dim)  # (m, m, C)
        return sinkhorn_coupling(log_a, p1, p2, self.sinkhorn_iters)

    def estimate(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
    ) -> BATCHResult:
        """Atoms averaged over random batches of the given samples (bits; the batches are drawn
        by a permutation fixed by the seed, so a sorted recording is not biased, though
        reordering the samples changes which share a batch and the estimate within its noise;
        ``n mod batch_size`` random samples sit out, as in training)."""
        if self.encoders is None:
            raise PIDInputError('BATCH: call fit() before estimate()')
        f1, f2, _ = check_inputs(features_1, features_2, None)
        if len(f1) == 0:
            raise PIDInputError('features_1: no samples to estimate on')
        check_widths(f1, f2, (len(self.mean[0]), len(self.mean[1])))
        p1, p2, p12 = self._probs(f1, f2, (probs_1, probs_2, probs_12))
        x1, x2 = self._norm(f1, 0), self._norm(f2, 1)
        n, m = len(f1), min(self.batch_size, len(f1))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        acc: dict[str, float] = {}
        count = 0
        worst = 0.0  # Sinkhorn's largest marginal error over the batches
        with torch.inference_mode():
            for start in range(0, n - m + 1, m):
                b = perm[start : start + m]
                q, error = self._coupling(self.encoders, x1[b], x2[b], p1[b], p2[b])
                worst = max(worst, error)
                at = batch_atoms(q, p1[b], p12[b])
                at['mi_2'] = batch_atoms(q.transpose(0, 1), p2[b], p12[b])['mi_1']
                for k, v in at.items():
                    acc[k] = acc.get(k, 0.0) + float(v) / _LN2
                count += 1
        a = {k: v / count for k, v in acc.items()}
        if worst >= SINKHORN_TOL:
            logger.warning(
                'BATCH: Sinkhorn stopped at sinkhorn_iters=%d with the coupling %.3g (total '
                'variation) off its marginals, more than %g: the atoms are biased; raise '
                'sinkhorn_iters',
                self.sinkhorn_iters, worst, SINKHORN_TOL,
            )  # fmt: skip
        return BATCHResult(
            redundancy=a['mi_1'] - a['u1'],
            unique_1=a['u1'],
            unique_2=a['u2'],
            synergy=a['mi_12'] - a['i_q'],
            mi_1=a['mi_1'],
            mi_2=a['mi_2'],
            mi_12=a['mi_12'],
            marginal_error=worst,
        )
