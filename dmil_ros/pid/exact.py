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

"""Exact two-source partial information decomposition (BROJA) with a certified duality gap.

Definition (Bertschinger, Rauh, Olbrich, Jost, Ay 2014, "Quantifying unique information",
Entropy 16:2161). For p(x1, x2, y) let Δp be the distributions q with q(x1, y) = p(x1, y) and
q(x2, y) = p(x2, y). With q* = argmin_{q in Δp} I_q(X1,X2;Y):

    U1 = I_q*(X1;Y|X2)   U2 = I_q*(X2;Y|X1)   R = I(X1;Y) - U1   S = I_p(X1,X2;Y) - I_q*(X1,X2;Y)

Because q(x1,y), q(x2,y) and q(y) are fixed on Δp, every atom is affine in the optimal value
I_q* := I_q*(X1,X2;Y):  U1 = I_q* - I(X2;Y),  U2 = I_q* - I(X1;Y),  R = I(X1;Y) + I(X2;Y) - I_q*,
S = I(X1,X2;Y) - I_q*.  So a certified bound on the optimal value bounds every atom.

Algorithm (chosen on measurements, see benchmarks/bench_pid_exact.py and the module notes):

1. Primal (nats). Minimise f(q) = sum q log(q / q(x1,x2)) = -H_q(Y|X1,X2) over Δp. Cells with
   p(x1,y) = 0 or p(x2,y) = 0 are forced to zero and dropped; outcomes of zero probability too.
2. Lagrange dual. f is positively homogeneous per cell c = (x1,x2), so its conjugate is an
   indicator and the dual is the small smooth convex program

       max_{λ, μ}  sum_{x1,y} λ(x1,y) p(x1,y) + sum_{x2,y} μ(x2,y) p(x2,y)
       s.t.        g_c := logsumexp_y (λ(x1,y) + μ(x2,y)) <= 0        for every cell c,

   with (n1 + n2)·|Y| variables and n1·n2 constraints (32x32x8: 512 variables, 1024
   constraints, against 8192 cones and 24576 variables in the exponential-cone program of
   Makkeh, Theis & Vicente 2018, "BROJA-2PID", Entropy 20:271, which dit's method='cone' solves
   with ECOS). One gauge direction (λ(·,y) + c_y, μ(·,y) - c_y) is pinned per y.
3. Infeasible primal-dual interior point with Mehrotra's predictor-corrector on the dual
   (Nocedal & Wright 2006, §14.2, §19.3): slacks s_c = -g_c, multipliers ν_c >= 0 of g_c <= 0,
   complementarity ν_c s_c driven to σμ·w_c with w_c the cell mass of the product distribution
   p(x1|y)p(x2|y)p(y) (weighted centring keeps the dual variables of tiny-mass cells from
   running off). The primal optimiser is q_c(y) = ν_c π_c(y) with π_c the softmax of
   λ(x1,·) + μ(x2,·). Each step assembles the dense Hessian in closed form, per cell
   K_c = ν_c (diag π_c - π_c π_c') + (ν_c / s_c) π_c π_c', and factorises it once (Cholesky,
   Jacobi-scaled) for both the predictor and the corrector. Typical: 8-20 steps.
4. Certificate: q from ν is scaled to exact marginals by iterative proportional fitting per y;
   the dual point is made feasible by lowering every λ by max(max_c g_c, 0) (the dual objective
   drops by exactly that, since sum p(x1,y) = 1); gap = f(q) - dual >= 0 by weak duality is
   reported in bits, and iterations stop once it is below ``tol``.
5. Fallback (rare: inputs spanning tens of decades): weighted log-barrier path following on the
   dual (Boyd & Vandenberghe 2004, §11.3), strictly feasible iterates, Newton with backtracking,
   t <- 30 t, certified the same way.

Why this and not the alternatives (measured on the 2-core CI machine, one BLAS thread;
``python benchmarks/bench_pid_exact.py``): dit's exponential-cone route (ECOS, 3 variables per
cell, model built in Python loops) takes 0.27 s at 8x8x4 and 9.2 s at 32x32x8 against 0.015 s
and 0.19 s here (18x, 49x), with atoms agreeing to 5e-8 bits. Clarabel on the same exponential-cone
programme, built vectorised, solves 32x32x8 in 6.2 s (41 iterations) and stops at
'AlmostSolved' on inputs with 1e-13 probabilities, so it is not used. dit's admUI (alternating
divergence minimisation, Banerjee et al. 2018) took 6.7 s on AND; its SLSQP route is known to
return wrong, even negative, atoms. The dual has (n1+n2-1)·|Y| variables, so one step costs one
dense Cholesky of that order (3 ms at order 504).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from dmil_ros.pid.checks import in_range
from dmil_ros.pid.errors import PIDSolverError
from dmil_ros.pid.measures import normalise

__all__ = ['PIDResult', 'exact_pid']

_LN2 = math.log(2.0)
_LOG = logging.getLogger(__name__)
_MAX_PD = 60
_RD_CERTIFY = 1e-5
_W_FLOOR = 1e-6
_MAX_DZ = 5.0
_MAX_BARRIER = 600
_MAX_CENTRING = 50
_IPF_SWEEPS = 300
_EPS_MIX = 1e-14
_RESID_OK = 1e-13  # marginal residual up to which q counts as feasible (rounding)

FloatArray = NDArray[np.float64]
_Factor = tuple[FloatArray, tuple[FloatArray, bool] | None, FloatArray]


@dataclass(frozen=True, eq=False)
class PIDResult:
    """BROJA atoms and mutual informations (bits) with solver diagnostics.

    ``q`` is the optimiser q*(x1, x2, y) (read-only, same shape as the input); ``gap`` bounds
    |value - optimum| for every atom (bits); ``marginal_residual`` is max |q(xi,y) - p(xi,y)|.
    """

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    mi_1: float
    mi_2: float
    mi_12: float
    iterations: int
    gap: float
    marginal_residual: float
    q: FloatArray

    @property
    def atoms(self) -> tuple[float, float, float, float]:
        """(redundancy, unique_1, unique_2, synergy) in bits."""
        return (self.redundancy, self.unique_1, self.unique_2, self.synergy)

    @property
    def mi_q(self) -> float:
        """I_q*(X1,X2;Y) in bits: the optimal value of the BROJA programme."""
        return self.mi_12 - self.synergy


def exact_pid(joint: ArrayLike, *, tol: float = 1e-9, max_gap: float = 1e-6) -> PIDResult:
    """BROJA PID of ``joint`` = p[x1, x2, y] (probabilities or counts; zeros allowed).

    ``tol`` is the certified duality gap (bits) the solver aims at; every atom is within the
    reported ``gap`` of its exact value. Inputs spanning many decades (entries far below 1e-12
    next to entries near 1) can stall short of ``tol``: the result is returned (with a logged
    warning) while its certified gap is at most ``max_gap`` bits, and :class:`PIDSolverError`
    is raised above that. :class:`PIDInputError` on invalid input.
    """
    tol = in_range('tol', tol, lambda v: v > 0)  # bits
    max_gap = in_range('max_gap', max_gap, lambda v: v > 0)  # bits
    p = normalise(joint, ndim=3)

    # 1. Drop outcomes of zero probability; solve on the reduced array.
    keep = [p.sum(axis=tuple(j for j in range(3) if j != i)) > 0 for i in range(3)]
    pr = p[np.ix_(*keep)]
    with _single_thread_blas():
        q_red, iterations, gap_nats, residual = _solve(pr, tol * _LN2, max(tol, max_gap) * _LN2)
    q = np.zeros_like(p)
    q[np.ix_(*keep)] = q_red
    q.setflags(write=False)

    # 2. Atoms are affine in I_q*(X1,X2;Y); clip I_q* into its proven range
    #    [max(I1, I2), min(I12, I1 + I2)] (moves it by rounding only) so atoms are >= 0; the
    #    final max(., 0) only removes rounding of order 1e-16 when that range is empty.
    h_y = _entropy_nats(pr.sum(axis=(0, 1)))
    i_1 = _mi_nats(pr.sum(axis=1))
    i_2 = _mi_nats(pr.sum(axis=0))
    i_12 = _mi_nats(pr.reshape(-1, pr.shape[2]))
    f_q = _objective(q_red)
    lo, hi = max(i_1, i_2), min(i_12, i_1 + i_2)
    i_q = min(max(h_y + f_q, lo), hi)
    return PIDResult(
        redundancy=max((i_1 + i_2 - i_q) / _LN2, 0.0),
        unique_1=max((i_q - i_2) / _LN2, 0.0),
        unique_2=max((i_q - i_1) / _LN2, 0.0),
        synergy=max((i_12 - i_q) / _LN2, 0.0),
        mi_1=i_1 / _LN2,
        mi_2=i_2 / _LN2,
        mi_12=i_12 / _LN2,
        iterations=iterations,
        gap=gap_nats / _LN2,
        marginal_residual=residual,
        q=q,
    )


_CONTROLLER: Any = None


def _single_thread_blas() -> Any:
    """Context limiting BLAS to one thread: the factorisations here are small (order <= a few
    hundred), where OpenBLAS threads only contend; measured 3 ms against 0.6 s for one
    Cholesky of order 504 on the 2-core CI machine under load."""
    global _CONTROLLER  # noqa: PLW0603 - created once, lazily (inspecting libraries is slow)
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api='blas')


def _entropy_nats(p: FloatArray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def _mi_nats(pab: FloatArray) -> float:
    """I(A;B) in nats of a 2-D joint p[a, b]."""
    pa = pab.sum(axis=1)
    pb = pab.sum(axis=0)
    value = _entropy_nats(pa) + _entropy_nats(pb) - _entropy_nats(pab)
    return max(value, 0.0)


def _objective(q: FloatArray) -> float:
    """f(q) = sum q log(q / q(x1,x2)) = -H_q(Y|X1,X2) in nats."""
    qc = q.sum(axis=2, keepdims=True)  # (n1, n2, 1)
    mask = q > 0
    return float((q[mask] * np.log(q[mask] / np.broadcast_to(qc, q.shape)[mask])).sum())


def _ipf(
    q: FloatArray, p1: FloatArray, p2: FloatArray, product: FloatArray
) -> tuple[FloatArray, float]:
    """Fit each q(·,·|y) to the marginals p1 = p(x1,y), p2 = p(x2,y); returns (q, residual).

    1. Iterative proportional fitting (rows, then columns) while it helps.
    2. Exact repair of the remaining row error e (columns are exact, sum_x1 e = 0), label by
       label (the constraints do not couple labels): mix into q(·,·,y) a share
       ε_y = min(1, max_x1 |e(x1,y)| / p1(x1,y)) of the product distribution's slice
       p(x1,y) p(x2,y) / p(y), which meets both marginals, then add the rank-one
       Δ(x1,x2|y) = e'(x1,y) p(x2,y) / p(y) (row sums e', column sums 0), which that share keeps
       non-negative. Only rounding remains. Any such q is feasible and f is evaluated on it, so
       the shares only cost certificate tightness: one share for all labels, set by a row of
       mass 1e-10 off by 2e-4 of itself, added 2e-6 bits to f and refused a converged solve
       (review 22b); per label it stays below 1e-9 bits on those inputs.
    """
    for _ in range(_IPF_SWEEPS):
        rows = q.sum(axis=1)  # (n1, ny)
        q = q * np.divide(p1, rows, out=np.zeros_like(p1), where=rows > 0)[:, None, :]
        cols = q.sum(axis=0)  # (n2, ny)
        q = q * np.divide(p2, cols, out=np.zeros_like(p2), where=cols > 0)[None, :, :]
        if float(np.abs(q.sum(axis=1) - p1).max()) <= 1e-15:
            break
    e = p1 - q.sum(axis=1)  # (n1, ny)
    relative = np.divide(np.abs(e), p1, out=np.zeros_like(p1), where=p1 > 0)  # (n1, ny)
    eps = np.minimum(relative.max(axis=0), 1.0)  # (ny,) one share per label
    if np.any(eps > 0.0):
        q = (1.0 - eps) * q + eps * product  # (n1, n2, ny), eps broadcast over the labels
        e = p1 - q.sum(axis=1)
        py = p1.sum(axis=0)  # (ny,)
        q = q + e[:, None, :] * p2[None, :, :] / np.where(py > 0, py, 1.0)[None, None, :]
        q = np.maximum(q, 0.0)  # rounding only
    residual = max(
        float(np.abs(q.sum(axis=1) - p1).max()), float(np.abs(q.sum(axis=0) - p2).max())
    )
    return q, residual


class _DualProblem:
    """The dual of the BROJA programme on the reduced support: evaluation and Newton blocks."""

    def __init__(self, p: FloatArray) -> None:
        self.p1 = p.sum(axis=1)  # (n1, ny) p(x1, y)
        self.p2 = p.sum(axis=0)  # (n2, ny) p(x2, y)
        self.a1 = self.p1 > 0
        self.a2 = self.p2 > 0
        self.n1, self.ny = self.p1.shape
        self.n2 = self.p2.shape[0]
        self.allowed = self.a1[:, None, :] & self.a2[None, :, :]  # (n1, n2, ny)
        self.cells = self.allowed.any(axis=2)  # (n1, n2) constraints
        self.m = int(self.cells.sum())
        # Variables: λ on a1, μ on a2 except the first allowed x2 of each y (gauge pinned at 0).
        pinned = np.zeros_like(self.a2)
        pinned[np.argmax(self.a2, axis=0), np.arange(self.ny)] = True
        free2 = self.a2 & ~pinned
        self.var = np.concatenate([np.flatnonzero(self.a1), self.a1.size + np.flatnonzero(free2)])
        self.b = np.concatenate([self.p1.ravel(), self.p2.ravel()])[self.var]
        # Full-coordinate template: -inf where a multiplier does not exist, 0 at pinned ones.
        self.template = np.concatenate(
            [np.where(self.a1, 0.0, -np.inf).ravel(), np.where(self.a2, 0.0, -np.inf).ravel()]
        )
        # Index arrays for the Hessian assembly (full coordinates: λ (x1, y) then μ (x2, y)).
        ny, n1y = self.ny, self.n1 * self.ny
        i1, i2, iy = np.indices((self.n1, self.n2, ny))
        self._diag_rows = (i1 * ny + iy).ravel()
        self._diag_cols = (i2 * ny + iy).ravel()
        a, i, j = np.indices((self.n1, ny, ny))
        self._b1_rows, self._b1_cols = (a * ny + i).ravel(), (a * ny + j).ravel()
        a, i, j = np.indices((self.n2, ny, ny))
        self._b2_rows, self._b2_cols = n1y + (a * ny + i).ravel(), n1y + (a * ny + j).ravel()
        self._all = np.arange(n1y + self.n2 * ny)

    def start(self) -> FloatArray:
        """A strictly feasible dual point: every g_c <= -1."""
        z = np.zeros(self.var.size)
        z[: int(self.a1.sum())] = -math.log(self.ny) - 1.0
        return z

    def _split(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        full = self.template.copy()
        full[self.var] = z
        lam = full[: self.a1.size].reshape(self.n1, self.ny)
        mu = full[self.a1.size :].reshape(self.n2, self.ny)
        return lam, mu

    def softmax(self, z: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(g, π): g (n1, n2) logsumexp per cell (0 on non-cells), π (n1, n2, ny) softmax."""
        lam, mu = self._split(z)
        a = lam[:, None, :] + mu[None, :, :]  # (n1, n2, ny), -inf on forbidden cells
        amax = np.where(self.cells, a.max(axis=2), 0.0)  # (n1, n2)
        e = np.exp(a - amax[:, :, None])  # (n1, n2, ny)
        tot = np.where(self.cells, e.sum(axis=2), 1.0)
        g = amax + np.log(tot)
        return np.where(self.cells, g, 0.0), e / tot[:, :, None]

    def jt(self, pi: FloatArray, v: FloatArray) -> FloatArray:
        """sum_c v_c ∇g_c in the free variables; v is (n1, n2)."""
        wp = pi * v[:, :, None]  # (n1, n2, ny)
        full = np.concatenate([wp.sum(axis=1).ravel(), wp.sum(axis=0).ravel()])
        return np.asarray(full[self.var], dtype=np.float64)

    def jdz(self, pi: FloatArray, dz: FloatArray) -> FloatArray:
        """∇g_c' dz for every cell, (n1, n2)."""
        full = np.zeros(self.template.size)
        full[self.var] = dz
        dlam = full[: self.a1.size].reshape(self.n1, self.ny)
        dmu = full[self.a1.size :].reshape(self.n2, self.ny)
        out = np.einsum('aby,ay->ab', pi, dlam) + np.einsum('aby,by->ab', pi, dmu)
        return np.asarray(out, dtype=np.float64)

    def hessian(self, pi: FloatArray, w1: FloatArray, w2: FloatArray) -> FloatArray:
        """sum_c J_c' K_c J_c with K_c = w2_c diag π_c + (w1_c - w2_c) π_c π_c' (free vars)."""
        n1, n2, ny = self.n1, self.n2, self.ny
        n1y, n2y = n1 * ny, n2 * ny
        wp = pi * w2[:, :, None]  # (n1, n2, ny)
        vp = pi * (w1 - w2)[:, :, None]  # (n1, n2, ny)
        hess = np.zeros((n1y + n2y, n1y + n2y))
        # 1. Cross block λμ: K_(x1,x2)[y, y'] at rows (x1, y), columns (x2, y').
        k12 = np.einsum('abi,abj->aibj', vp, pi).reshape(n1y, n2y)
        k12[self._diag_rows, self._diag_cols] += wp.ravel()
        hess[:n1y, n1y:] = k12
        hess[n1y:, :n1y] = k12.T
        # 2. Block-diagonal λλ and μμ blocks: sums of K_c over the other source.
        b1 = np.einsum('abi,abj->aij', vp, pi)  # (n1, ny, ny)
        b2 = np.einsum('abi,abj->bij', vp, pi)  # (n2, ny, ny)
        hess[self._b1_rows, self._b1_cols] = b1.ravel()
        hess[self._b2_rows, self._b2_cols] = b2.ravel()
        diag = np.concatenate([wp.sum(axis=1).ravel(), wp.sum(axis=0).ravel()])
        hess[self._all, self._all] += diag
        return np.asarray(hess[np.ix_(self.var, self.var)], dtype=np.float64)

    @staticmethod
    def factor(h: FloatArray) -> _Factor:
        """Cholesky factor of the Jacobi-scaled h (None if singular: least squares then)."""
        scale = 1.0 / np.sqrt(np.maximum(np.diag(h), 1e-300))
        hs = h * scale[:, None] * scale[None, :]
        try:
            return scale, scipy.linalg.cho_factor(hs, lower=True, check_finite=False), hs
        except np.linalg.LinAlgError:
            return scale, None, hs

    @staticmethod
    def solve(fac: _Factor, rhs: FloatArray) -> FloatArray:
        scale, cho, hs = fac
        if cho is not None:
            x = scipy.linalg.cho_solve(cho, rhs * scale, check_finite=False)
        else:
            try:
                x = np.linalg.lstsq(hs, rhs * scale, rcond=None)[0]
            except np.linalg.LinAlgError:  # gelsd's SVD did not converge (a sparse histogram)
                solved = scipy.linalg.lstsq(
                    hs, rhs * scale, lapack_driver='gelsy', check_finite=False
                )
                x = solved[0]
        return np.asarray(scale * x, dtype=np.float64)


_Certified = tuple[FloatArray, float, float]  # (q, gap in nats, marginal residual)


def _certify(prob: _DualProblem, z: FloatArray, nu: FloatArray, product: FloatArray) -> _Certified:
    """Primal point from multipliers ν (marginals fitted exactly) and its certified gap.

    The dual point z is made feasible by lowering every λ by max(max_c g_c, 0), which lowers
    the dual objective by the same amount (sum p(x1, y) = 1).
    """
    g, pi = prob.softmax(z)
    q = pi * nu[:, :, None]  # (n1, n2, ny)
    q = q * (1.0 - _EPS_MIX) + _EPS_MIX * product  # every allowed cell positive (see _ipf)
    q, resid = _ipf(q, prob.p1, prob.p2, product)
    if resid > _RESID_OK:
        # Weak duality needs a feasible q: a point IPF could not fit certifies nothing.
        return q, math.inf, resid
    dual = float(prob.b @ z) - max(float(g[prob.cells].max()), 0.0)
    return q, max(_objective(q) - dual, 0.0), resid


def _weights(prob: _DualProblem, product: FloatArray) -> FloatArray:
    """Per-cell centring weights: the product distribution's cell masses, floored at
    _W_FLOOR of the largest (so that no cell's central path runs off to infinity), sum 1."""
    mass = product.sum(axis=2)  # (n1, n2)
    w = np.where(prob.cells, np.maximum(mass, _W_FLOOR * float(mass.max())), 0.0)
    return np.asarray(w / w.sum(), dtype=np.float64)


def _better(best: _Certified | None, new: _Certified) -> _Certified:
    return new if best is None or new[1] < best[1] else best


def _solve(
    p: FloatArray, tol_nats: float, accept_nats: float
) -> tuple[FloatArray, int, float, float]:
    """Optimiser q*, Newton steps, certified gap (nats) and marginal residual for reduced p."""
    prob = _DualProblem(p)
    product = prob.p1[:, None, :] * prob.p2[None, :, :] / p.sum(axis=(0, 1))[None, None, :]
    rows1, rows2 = prob.a1.sum(axis=0), prob.a2.sum(axis=0)
    if np.all((rows1 <= 1) | (rows2 <= 1)):
        # Δp is a single point (one marginal is a point mass for every y): q = product.
        return product, 0, 0.0, 0.0
    with np.errstate(all='ignore'):
        best, steps = _primal_dual(prob, product, tol_nats)
        if best is None or best[1] > tol_nats:
            fallback, more = _barrier(prob, product, tol_nats)
            steps += more
            if fallback is not None:
                best = _better(best, fallback)
    if best is None or not best[1] <= accept_nats:
        reached = 'none' if best is None or best[1] == math.inf else f'{best[1] / _LN2:.3g} bits'
        msg = (
            f'exact_pid: certified gap {reached} above max_gap {accept_nats / _LN2:.3g} bits '
            f'after {steps} Newton steps (shape {p.shape})'
        )
        raise PIDSolverError(msg)
    if best[1] > tol_nats:
        _LOG.warning(
            'exact_pid: certified gap %.3g bits above tol %.3g bits (shape %s); returned',
            best[1] / _LN2,
            tol_nats / _LN2,
            p.shape,
        )
    return best[0], steps, best[1], best[2]


def _primal_dual(
    prob: _DualProblem, product: FloatArray, tol_nats: float
) -> tuple[_Certified | None, int]:
    """Infeasible primal-dual interior point with Mehrotra's predictor-corrector.

    Nocedal & Wright 2006, §14.2 and §19.3, on the dual programme: variables z, slacks
    s_c = -g_c(z) (enforced only at convergence) and multipliers ν_c >= 0 of g_c <= 0; the
    primal optimiser is q_c(y) = ν_c π_c(y). Fast (10-20 steps) but not globalised: returns
    what it certified (None if nothing) and leaves hard cases to :func:`_barrier`.
    """
    cells = prob.cells
    z = prob.start()
    s = np.ones(cells.shape)  # (n1, n2), -g at the start point (1 off the cells, unused)
    w = _weights(prob, product)  # (n1, n2) centring weights, sum 1
    nu = w.copy()  # start on the weighted central path: ν_c s_c = w_c
    best: _Certified | None = None
    steps = 0

    def to_boundary(v: FloatArray, dv: FloatArray) -> float:
        neg = dv < 0
        return min(1.0, float((-v[neg] / dv[neg]).min())) if neg.any() else 1.0

    while steps < _MAX_PD:
        g, pi = prob.softmax(z)
        r_d = prob.jt(pi, nu) - prob.b  # marginals of q = νπ minus p's
        r_p = np.where(cells, g + s, 0.0)
        mu = float((nu * s)[cells].sum())  # = surrogate gap, since sum w = 1
        if not (math.isfinite(mu) and np.all(np.isfinite(r_d)) and np.all(np.isfinite(r_p))):
            break
        # 1. Certify once the surrogate gap and the marginal residual are small.
        if mu <= 0.5 * tol_nats and float(np.abs(r_d).max()) <= _RD_CERTIFY:
            best = _better(best, _certify(prob, z, nu, product))
            if best[1] <= tol_nats:
                break
        steps += 1
        # 2. One factorisation, two solves: affine (predictor) and centred (corrector).
        fac = prob.factor(prob.hessian(pi, nu / s, nu))

        state: dict[str, Any] = {'fac': fac, 'r_d': r_d, 'r_p': r_p, 'pi': pi, 'nu': nu, 's': s}

        rc_aff = nu * s
        dz, ds, dnu = _pd_direction(prob, rc_aff, **state)
        a_aff = min(to_boundary(s, ds), to_boundary(nu, dnu))
        mu_aff = float(((s + a_aff * ds) * (nu + a_aff * dnu))[cells].sum())
        # Centring target σμ·w_c with σ = (μ_aff/μ)^3, floored so that the iterates stop short
        # of the boundary once the gap is far below tol (more only hurts the conditioning).
        target = max((mu_aff / mu) ** 3 * mu, 1e-3 * tol_nats)
        dz, ds, dnu = _pd_direction(
            prob, np.where(cells, rc_aff + ds * dnu - target * w, 0.0), **state
        )
        alpha = min(1.0, 0.99 * min(to_boundary(s, ds), to_boundary(nu, dnu)))
        # Trust region on the dual variables (they are log-probabilities): the linearisation of
        # g_c is meaningless for moves of many nats, and unchecked moves can overflow.
        alpha = min(alpha, _MAX_DZ / max(float(np.abs(dz).max()), 1e-300))
        z, s, nu = z + alpha * dz, s + alpha * ds, nu + alpha * dnu
    return best, steps


def _pd_direction(
    prob: _DualProblem,
    r_c: FloatArray,
    *,
    fac: _Factor,
    r_d: FloatArray,
    r_p: FloatArray,
    pi: FloatArray,
    nu: FloatArray,
    s: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Newton direction (dz, ds, dν) of the primal-dual system for complementarity residual r_c.

    1. ds = -r_p - J dz;  2. dν = (-r_c - ν ds) / s;
    3. (sum ν ∇²g + J' diag(ν/s) J) dz = -r_d + J' ((r_c - ν r_p) / s).
    """
    cells = prob.cells
    dz = prob.solve(fac, -r_d + prob.jt(pi, (r_c - nu * r_p) / s))
    ds = np.where(cells, -r_p - prob.jdz(pi, dz), 0.0)
    dnu = np.where(cells, (-r_c - nu * ds) / s, 0.0)
    return dz, ds, dnu


def _barrier(
    prob: _DualProblem, product: FloatArray, tol_nats: float
) -> tuple[_Certified | None, int]:
    """Feasible log-barrier path following (Boyd & Vandenberghe 2004, §11.3): the fallback.

    Minimises -t b'z - sum_c log(-g_c) by Newton with backtracking (z stays strictly feasible),
    then t <- 30 t; at a centred point ν_c = 1/(t s_c). Slower than :func:`_primal_dual` but
    globally convergent.
    """
    cells = prob.cells
    w = _weights(prob, product)  # (n1, n2) barrier weights, sum 1
    z = prob.start()
    t = 1.0
    best: _Certified | None = None
    steps = 0

    def barrier(z: FloatArray) -> float:
        g, _ = prob.softmax(z)
        gc = g[cells]
        if not np.all(gc < 0):
            return math.inf
        return float(-t * (prob.b @ z) - (w[cells] * np.log(-gc)).sum())

    while steps < _MAX_BARRIER:
        # 1. Centre. Near the centre (small decrement) the full step is taken whenever it is
        #    strictly feasible: there the decrease of the barrier is below its rounding at large t.
        phi = barrier(z)
        last = math.inf
        for _ in range(_MAX_CENTRING):
            g, pi = prob.softmax(z)
            inv_s = np.where(cells, -1.0 / np.where(cells, g, -1.0), 0.0)  # (n1, n2)
            grad = prob.jt(pi, w * inv_s) - t * prob.b
            d = -prob.solve(prob.factor(prob.hessian(pi, w * inv_s * inv_s, w * inv_s)), grad)
            dec2 = float(-(grad @ d))
            steps += 1
            if not dec2 > 1e-12 or not dec2 < last:
                break
            last = dec2 if dec2 < 1e-2 else math.inf
            alpha = 1.0
            while alpha > 1e-12:
                z_new = z + alpha * d
                phi_new = barrier(z_new)
                if phi_new < math.inf and (dec2 < 1e-2 or phi_new <= phi - 0.25 * alpha * dec2):
                    break
                alpha *= 0.5
            else:
                break
            z, phi = z_new, phi_new
        # 2. Certify from the central-path multipliers.
        if 1.0 / t <= 4 * tol_nats:
            g, _ = prob.softmax(z)
            nu = np.where(cells, -w / (t * np.where(cells, g, -1.0)), 0.0)
            best = _better(best, _certify(prob, z, nu, product))
            if best[1] <= tol_nats:
                break
        t *= 30.0
    return best, steps
