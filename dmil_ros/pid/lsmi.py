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

"""LSMI: lightweight sample-wise multimodal interactions.

Yang, Wang, Hu, "Efficient Quantification of Multimodal Interaction at Sample Level", ICML 2025
(arXiv 2506.17248).

For a sample (x1, x2, y), in bits, with discriminators p(y|x1), p(y|x2), p(y|x1,x2), the empirical
label prior p(y) and KNIFE densities (methods.md §3; Finn & Lizier 2018 for I±_min):

1. i(x1;y) = log p(y|x1) - log p(y);  likewise i(x2;y), i(x1,x2;y)
2. r  = min(h(x1), h(x2)) - min(h(x1|y), h(x2|y))          (pointwise I±_min redundancy)
3. u1 = i(x1;y) - r,   u2 = i(x2;y) - r,   s = i(x1,x2;y) - r - u1 - u2
4. shifted: r+δ, u1-δ, u2-δ, s+δ with one dataset-level δ (LSMI reference code, main_lsmi.py),
   the δ of least magnitude making the mean atoms non-negative (:func:`pointwise.shift_delta`).

Densities are differential: h = -log2 p_KNIFE(x) in each feature space, so the min in step 2
compares quantities of different spaces: scale, dimension and the per-sample noise density decide
which modality wins. The mean then converges to the I±_min of the *continuous* features (checked
against exact mixture densities in the tests), which on AND/OR differs from the I±_min of the
discrete latent variables even at vanishing noise (AND, 4-d features: R 0.36 vs 0.56); on XOR
and RDN, and after the shift on AND/OR/UNQ, the two agree.

Deviations from the reference code (documented): the prior p(y) is the empirical label frequency,
not uniform 1/C; the discriminators (MLP(hidden), or class probabilities supplied by the caller,
e.g. the DMIL unimodal and joint heads) train lean: batches of 512, Adam 1e-2, early stopping on
a held-out cross-entropy (a few epochs at 10k samples instead of 30 at Adam 1e-3; the dataset
means stay within 0.01 bits of the truths, benchmarks/bench_pid_sample.py). Densities: EM, with
BLAS/OpenMP pools limited to ``num_threads`` (busy-waiting pools on a shared machine slowed EM
10-25x). h(x|y) comes from class-conditional KNIFEs (methods.md §3) and h(x) from their
prior-weighted mixture (:meth:`LSMI.entropies`); the reference code fits one marginal KNIFE and
derives h(x|y) = h(x) - i(x;y) from the discriminator, so with a caller's heads its r and u come
from one model, here from the densities and the heads.

Fitting and evaluation run in numpy (float64). torch is needed only to train the MLP
discriminators (no external probabilities given) and for the ONNX-exportable twins of the
densities and terms (:mod:`dmil_ros.pid.modules`), so the audit and library use with a model's
own heads work on an install without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from dmil_ros.pid.checks import check_seed, count, in_range
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.knife import Mixtures, fit_mixtures
from dmil_ros.pid.pointwise import shift_delta

if TYPE_CHECKING:
    from torch import nn

    from dmil_ros.pid.modules import LSMIDensities, LSMITerms

__all__ = ['LSMI', 'LSMIConfig', 'LSMIDataset', 'LSMIPointwise']

FloatArray = NDArray[np.float64]
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class LSMIConfig:
    """LSMI settings (reference code: K = 5 kernels, hidden 64, 30 epochs of Adam 1e-3).

    The discriminators train lean: batches of 512, Adam 1e-2 (cosine over ``epochs``), at most
    ``epochs`` epochs, stopped early after ``patience`` epochs without a validation
    cross-entropy gain of ``tol`` nats on a held-out ``val_fraction`` (best epoch kept;
    ``patience = 0``: no early stopping, all samples trained on).
    """

    n_components: int = 5
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-2
    weight_decay: float = 0.0
    reg_covar: float = 1e-6
    seed: int = 0
    num_threads: int = 1
    patience: int = 2
    val_fraction: float = 0.1
    tol: float = 5e-3

    def __post_init__(self) -> None:
        for name in ('n_components', 'hidden', 'epochs', 'batch_size', 'num_threads'):
            count(f'LSMIConfig.{name}', getattr(self, name))
        count('LSMIConfig.patience', self.patience, minimum=0)
        check_seed('LSMIConfig.seed', self.seed, derived=2)  # seed + 1, seed + 2: heads
        ranges: dict[str, Callable[[float], bool]] = {
            'lr': lambda v: v > 0,
            # 0 fails scikit-learn's EM on a constant or duplicated feature column
            'reg_covar': lambda v: v > 0,
            'weight_decay': lambda v: v >= 0,
            'val_fraction': lambda v: 0 < v < 1,
            'tol': lambda v: v >= 0,
        }
        for name, test in ranges.items():
            in_range(f'LSMIConfig.{name}', getattr(self, name), test)


@dataclass(frozen=True)
class LSMIPointwise:
    """Per-sample terms in bits, each (N,): raw I±_min and shifted by ``delta``."""

    redundancy: FloatArray
    unique_1: FloatArray
    unique_2: FloatArray
    synergy: FloatArray
    redundancy_shifted: FloatArray
    unique_1_shifted: FloatArray
    unique_2_shifted: FloatArray
    synergy_shifted: FloatArray
    pmi_1: FloatArray
    pmi_2: FloatArray
    pmi_12: FloatArray
    delta: float


@dataclass(frozen=True)
class LSMIDataset:
    """Dataset means in bits: raw, and shifted by the ``delta`` computed on these means."""

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    delta: float

    @property
    def raw(self) -> tuple[float, float, float, float]:
        return self.redundancy, self.unique_1, self.unique_2, self.synergy

    @property
    def shifted(self) -> tuple[float, float, float, float]:
        d = self.delta
        return self.redundancy + d, self.unique_1 - d, self.unique_2 - d, self.synergy + d


def _terms(  # noqa: PLR0917  (the arrays of lsmi_terms, in its order)
    log_prior: FloatArray,
    log_p1: FloatArray,
    log_p2: FloatArray,
    log_p12: FloatArray,
    h1: FloatArray,
    h2: FloatArray,
    h1y: FloatArray,
    h2y: FloatArray,
    labels: NDArray[np.int64],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Raw r, u1, u2, s and the three pointwise MIs (each (N,), bits) of each sample's label.

    The numpy twin of :func:`dmil_ros.pid.modules.lsmi_terms` (the exported graph's): natural-log
    probabilities ``log_prior`` (C,), ``log_p*`` (N, C); densities in bits ``h1``, ``h2`` (N,),
    ``h1y``, ``h2y`` (N, C).
    """
    rows = np.arange(len(labels))
    lp = log_prior[labels]  # (N,)
    # 1. pointwise mutual informations, bits
    i1 = (log_p1[rows, labels] - lp) / _LN2  # (N,)
    i2 = (log_p2[rows, labels] - lp) / _LN2
    i12 = (log_p12[rows, labels] - lp) / _LN2
    # 2. I±_min redundancy
    r = np.minimum(h1, h2) - np.minimum(h1y[rows, labels], h2y[rows, labels])
    # 3. the rest
    u1 = i1 - r
    u2 = i2 - r
    return r, u1, u2, i12 - r - u1 - u2, i1, i2, i12


def check_inputs(
    f1: NDArray[np.floating], f2: NDArray[np.floating], labels: NDArray[np.integer] | None
) -> tuple[FloatArray, FloatArray, NDArray[np.int64] | None]:
    a1 = np.asarray(f1, dtype=np.float64)
    a2 = np.asarray(f2, dtype=np.float64)
    for name, a in (('features_1', a1), ('features_2', a2)):
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise PIDInputError(f'{name}: expected a finite (N, D) array, got shape {a.shape}')
    if len(a1) != len(a2):
        raise PIDInputError(f'features_2: {len(a2)} samples, features_1 has {len(a1)}')
    if labels is None:
        return a1, a2, None
    y = np.asarray(labels)
    if y.shape != (len(a1),) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        msg = f'labels: expected {len(a1)} non-negative integers, got shape {y.shape} {y.dtype}'
        raise PIDInputError(msg)
    return a1, a2, y.astype(np.int64)


def check_probs(probs: NDArray[np.floating], n: int, c: int, name: str) -> FloatArray:
    """``probs`` as float64 (n, c): finite, non-negative, every row with positive mass."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (n, c) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise PIDInputError(f'{name}: expected finite non-negative ({n}, {c}), got {p.shape}')
    empty = np.flatnonzero(p.sum(1) <= 0)
    if empty.size:
        raise PIDInputError(f'{name}: row {int(empty[0])} has no probability mass')
    return p


def class_count(labels: NDArray[np.int64], n_classes: int | None) -> int:
    """The number of classes (``n_classes``, else max label + 1), checked against the labels."""
    if labels.size == 0:
        raise PIDInputError('labels: no samples')
    c = int(labels.max()) + 1 if n_classes is None else count('n_classes', n_classes)
    if labels.max() >= c:
        raise PIDInputError(f'labels: value {int(labels.max())} >= n_classes {c}')
    return c


def check_widths(f1: FloatArray, f2: FloatArray, widths: tuple[int, int]) -> None:
    """Both feature arrays have the column counts an estimator was fitted on."""
    for m, (f, width) in enumerate(((f1, widths[0]), (f2, widths[1])), 1):
        if f.shape[1] != width:
            raise PIDInputError(f'features_{m}: {f.shape[1]} columns, fitted on {width}')


def normalised_probs(probs: NDArray[np.floating], n: int, c: int, name: str) -> FloatArray:
    """``probs`` checked (:func:`check_probs`) with every row scaled to sum to 1."""
    p = check_probs(probs, n, c, name)
    return np.asarray(p / p.sum(1, keepdims=True), dtype=np.float64)


_PROB_NAMES = ('probs_1', 'probs_2', 'probs_12')


def all_or_none(probs: tuple[NDArray[np.floating] | None, ...]) -> bool:
    """True when all three external heads' probabilities are given, False when none is."""
    given = [p is not None for p in probs]
    if any(given) and not all(given):
        raise PIDInputError('probs_1, probs_2, probs_12: give all three or none')
    return all(given)


def external_probs(
    probs: tuple[NDArray[np.floating] | None, ...], n: int, c: int
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The three heads' probabilities, each row scaled to sum to 1; None when none is given."""
    if not all_or_none(probs):
        return None
    out = [
        normalised_probs(p, n, c, name)
        for name, p in zip(_PROB_NAMES, probs, strict=True)
        if p is not None
    ]  # all_or_none: every one is given; this narrows the type
    return out[0], out[1], out[2]


class LSMI:
    """LSMI estimator. ``fit(f1, f2, labels)`` then ``pointwise(...)`` / ``dataset(...)``.

    Pass ``probs_1``, ``probs_2``, ``probs_12`` ((N, C) class probabilities of the unimodal and
    joint discriminators) to :meth:`fit` *and* the evaluation calls to use external heads;
    otherwise three MLP discriminators are trained on the features (this needs torch; with
    external heads everything runs in numpy). :attr:`densities` and :meth:`terms_module` give the
    fit as ONNX-exportable torch modules.
    """

    def __init__(self, config: LSMIConfig | None = None, **kwargs: object) -> None:
        base = config or LSMIConfig()
        unknown = sorted(set(kwargs) - set(base.__dict__))
        if unknown:
            known = sorted(base.__dict__)
            raise PIDInputError(f'LSMI: unknown option(s) {unknown}, known: {known}')
        self.config = LSMIConfig(**{**base.__dict__, **kwargs})
        self.n_classes = 0
        self.log_prior = np.zeros(0)
        self.delta = 0.0
        self.discriminators: tuple[nn.Module, nn.Module, nn.Module] | None = None
        self.mixtures: tuple[Mixtures, Mixtures] | None = None  # h(x_m|y) of each modality

    # -- fitting --------------------------------------------------------------------------------
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
    ) -> LSMI:
        cfg = self.config
        f1, f2, y = check_inputs(features_1, features_2, labels)
        if y is None:
            raise PIDInputError('labels: required to fit')
        c = class_count(y, n_classes)
        counts = np.bincount(y, minlength=c).astype(np.float64)
        if np.any(counts < 2):
            raise PIDInputError(f'labels: every class needs >= 2 samples, counts {counts}')
        self.n_classes = c
        self.log_prior = np.log(counts / counts.sum())
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        # BLAS/OpenMP pools limited: sklearn's EM on small mixtures is 10-25x slower with
        # busy-waiting thread pools on a shared machine (audit measurement)
        with threadpool_limits(cfg.num_threads):
            self.discriminators = (
                None if all_or_none((probs_1, probs_2, probs_12)) else self._train(f1, f2, y)
            )
            kn = {'n_components': cfg.n_components, 'seed': cfg.seed, 'reg_covar': cfg.reg_covar}
            self.mixtures = (
                fit_mixtures(f1, y, c, name='features_1', **kn),  # type: ignore[arg-type]
                fit_mixtures(f2, y, c, name='features_2', **kn),  # type: ignore[arg-type]
            )
            self.delta = 0.0
            pw = self._raw(f1, f2, y, probs_1=probs_1, probs_2=probs_2, probs_12=probs_12)
            self.delta = shift_delta(*(float(a.mean()) for a in pw[:4]))
        return self

    def _train(
        self, f1: FloatArray, f2: FloatArray, y: NDArray[np.int64]
    ) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The three MLP discriminators (torch, ``num_threads`` threads)."""
        import torch

        from dmil_ros.pid.discriminators import train_classifier

        cfg = self.config
        kw = {
            'hidden': cfg.hidden,
            'epochs': cfg.epochs,
            'batch_size': cfg.batch_size,
            'lr': cfg.lr,
            'weight_decay': cfg.weight_decay,
            'patience': cfg.patience,
            'val_fraction': cfg.val_fraction,
            'tol': cfg.tol,
        }
        c = self.n_classes
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(cfg.num_threads)
        try:
            f12 = np.concatenate([f1, f2], axis=1)
            return (
                train_classifier(f1, y, c, seed=cfg.seed, **kw),  # type: ignore[arg-type]
                train_classifier(f2, y, c, seed=cfg.seed + 1, **kw),  # type: ignore[arg-type]
                train_classifier(f12, y, c, seed=cfg.seed + 2, **kw),  # type: ignore[arg-type]
            )
        finally:
            torch.set_num_threads(prev_threads)

    # -- evaluation -----------------------------------------------------------------------------
    def log_probs(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Natural-log class probabilities (N, C) of the three discriminators."""
        f1, f2, _ = check_inputs(features_1, features_2, None)
        n, c = len(f1), self.n_classes
        # a partial set is refused, not silently replaced by the heads
        given = external_probs((probs_1, probs_2, probs_12), n, c)
        if given is not None:
            lp1, lp2, lp12 = (np.log(np.maximum(p, 1e-12)) for p in given)
            return lp1, lp2, lp12
        if self.discriminators is None:
            raise PIDInputError('probs_1/2/12: LSMI was fitted with external probabilities')
        from dmil_ros.pid.discriminators import discriminator_log_probs

        return discriminator_log_probs(self.discriminators, f1, f2)

    def entropies(
        self, features_1: NDArray[np.floating], features_2: NDArray[np.floating]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """h1 (N,), h2 (N,), h1y (N, C), h2y (N, C) in bits (:class:`LSMIDensities`' steps).

        1. h(x_m|y) = -log2 p(x_m|y) for every class y, from the class-conditional mixtures;
        2. h(x_m) = -log2 Σ_y p(y) p(x_m|y), the marginal as the prior-weighted mixture of them.

        Step 2 is not in the paper, which fits the marginal as a mixture of its own. Fitted
        separately, the two need not agree, and a rare class's tight conditional then puts
        h(x) - h(x|y) (the specificity part of i(x;y)) tens of bits above its bound -log2 p(y).
        Taken as their mixture, the densities are one model of p(x, y), so h(x) - h(x|y) =
        log2 p(y|x) - log2 p(y) <= -log2 p(y) for every sample, and r <= -log2 p(y).
        """
        if self.mixtures is None:
            raise PIDInputError('LSMI: call fit() before evaluating')
        f1, f2, _ = check_inputs(features_1, features_2, None)
        check_widths(f1, f2, (self.mixtures[0].dim, self.mixtures[1].dim))
        h1y, h2y = (mix.bits(f) for mix, f in zip(self.mixtures, (f1, f2), strict=True))  # 1.
        # 2. h(x_m) = -log2 Σ_y p(y) p(x_m|y), (N,) each
        h1, h2 = (-logsumexp(self.log_prior - hy * _LN2, axis=1) / _LN2 for hy in (h1y, h2y))
        return h1, h2, h1y, h2y

    def _raw(
        self,
        f1: FloatArray,
        f2: FloatArray,
        y: NDArray[np.int64],
        *,
        probs_1: NDArray[np.floating] | None,
        probs_2: NDArray[np.floating] | None,
        probs_12: NDArray[np.floating] | None,
    ) -> tuple[FloatArray, ...]:
        if self.mixtures is None:
            raise PIDInputError('LSMI: call fit() before evaluating')
        if len(f1) == 0:
            raise PIDInputError('features_1: no samples to evaluate')
        if y.size and y.max() >= self.n_classes:
            raise PIDInputError(f'labels: value {int(y.max())} >= n_classes {self.n_classes}')
        h1, h2, h1y, h2y = self.entropies(f1, f2)
        lp1, lp2, lp12 = self.log_probs(
            f1, f2, probs_1=probs_1, probs_2=probs_2, probs_12=probs_12
        )
        r, u1, u2, s, *pmi = _terms(self.log_prior, lp1, lp2, lp12, h1, h2, h1y, h2y, y)
        # 4. the shift: +delta on r and s, -delta on u1 and u2
        d = self.delta
        return (r, u1, u2, s, r + d, u1 - d, u2 - d, s + d, *pmi)

    def pointwise(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        labels: NDArray[np.integer],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
    ) -> LSMIPointwise:
        """Per-sample terms (bits); shifted values use the δ fixed at :meth:`fit`."""
        f1, f2, y = check_inputs(features_1, features_2, labels)
        if y is None:
            raise PIDInputError('labels: required for per-sample terms')
        a = self._raw(f1, f2, y, probs_1=probs_1, probs_2=probs_2, probs_12=probs_12)
        v = [np.asarray(x, dtype=np.float64) for x in a]
        return LSMIPointwise(
            redundancy=v[0],
            unique_1=v[1],
            unique_2=v[2],
            synergy=v[3],
            redundancy_shifted=v[4],
            unique_1_shifted=v[5],
            unique_2_shifted=v[6],
            synergy_shifted=v[7],
            pmi_1=v[8],
            pmi_2=v[9],
            pmi_12=v[10],
            delta=self.delta,
        )

    def dataset(
        self,
        features_1: NDArray[np.floating],
        features_2: NDArray[np.floating],
        labels: NDArray[np.integer],
        *,
        probs_1: NDArray[np.floating] | None = None,
        probs_2: NDArray[np.floating] | None = None,
        probs_12: NDArray[np.floating] | None = None,
    ) -> LSMIDataset:
        """Means of the raw terms, and the δ computed from them (as the reference code does)."""
        pw = self.pointwise(
            features_1, features_2, labels, probs_1=probs_1, probs_2=probs_2, probs_12=probs_12
        )
        m = [float(np.mean(a)) for a in (pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy)]
        return LSMIDataset(m[0], m[1], m[2], m[3], delta=shift_delta(*m))

    # -- export ---------------------------------------------------------------------------------
    @property
    def densities(self) -> LSMIDensities | None:
        """The fitted densities as an exportable torch module (None before :meth:`fit`)."""
        if self.mixtures is None:
            return None
        import torch

        from dmil_ros.pid.modules import KNIFE, LSMIDensities

        c1, c2 = (KNIFE.from_mixtures(m) for m in self.mixtures)
        return LSMIDensities(c1, c2, torch.as_tensor(self.log_prior)).eval()

    def terms_module(self) -> LSMITerms:
        """The exportable terms module with this fit's prior and δ."""
        import torch

        from dmil_ros.pid.modules import LSMITerms

        return LSMITerms(torch.as_tensor(self.log_prior), self.delta).eval()
