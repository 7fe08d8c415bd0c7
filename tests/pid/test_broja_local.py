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

"""BROJA-local terms: mean identity, catalogue cells, continuous tasks, alarm ranking, ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from dmil_ros.pid import catalogue
from dmil_ros.pid.broja_local import BROJALocal, _fit_duals, local_table
from dmil_ros.pid.errors import PIDInputError
from dmil_ros.pid.exact import exact_pid
from dmil_ros.pid.measures import mutual_information
from dmil_ros.pid.tasks import ModalitySpec, family_joint, make_task


@settings(max_examples=25, deadline=None)
@given(st.tuples(st.integers(2, 4), st.integers(2, 4), st.integers(2, 3), st.integers(0, 2**31)))
def test_mean_identity_on_random_distributions(spec: tuple[int, int, int, int]) -> None:
    n1, n2, ny, seed = spec
    p = np.random.default_rng(seed).dirichlet(np.ones(n1 * n2 * ny)).reshape(n1, n2, ny)
    res = exact_pid(p)
    tab = local_table(p, res.q)
    exact = (res.redundancy, res.unique_1, res.unique_2, res.synergy)
    np.testing.assert_allclose(tab.means(), exact, atol=1e-6)
    # per-cell identities, on every cell
    i1 = tab.log_p1[:, None, :] - tab.log_prior
    np.testing.assert_allclose(tab.redundancy + tab.unique_1, np.broadcast_to(i1, p.shape))
    total = tab.redundancy + tab.unique_1 + tab.unique_2 + tab.synergy
    np.testing.assert_allclose(
        np.sum(tab.joint * total), mutual_information(p, [0, 1], [2]), atol=1e-9
    )
    # the dual variant: one dataset-level shift by E_p[g] (g = log-partition of λ + μ)
    dual = local_table(p, res.q, variant='dual')
    d = dual.mean_deviation()
    assert d <= 1e-6
    np.testing.assert_allclose(
        dual.means(), np.asarray(exact) + np.array([d, -d, -d, d]), atol=1e-6
    )


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.tuples(st.integers(2, 4), st.integers(2, 4), st.integers(2, 3), st.integers(0, 2**31)))
def test_exact_mean_identity_holds_for_any_coupling_in_delta_p(
    spec: tuple[int, int, int, int],
) -> None:
    """E_p[ell] = E_q[log2 q(y|x1,x2)] for every q with p's (x1, y) and (x2, y) marginals, not
    only q*: here the product p(x1,y) p(x2,y) / p(y), in Delta_p but not the optimiser."""
    n1, n2, ny, seed = spec
    p = np.random.default_rng(seed).dirichlet(np.ones(n1 * n2 * ny)).reshape(n1, n2, ny)
    q = p.sum(1)[:, None, :] * p.sum(0)[None, :, :] / p.sum((0, 1))
    tab = local_table(p, q, variant='exact_mean')
    want = float((q * np.log2(q / q.sum(2, keepdims=True))).sum())
    assert float((p * tab.ell).sum()) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize('name', ['XOR', 'AND', 'OR', 'RDN', 'UNQ1', 'UNQ2', 'COPY', 'RDN_XOR'])
def test_catalogue_means(name: str) -> None:
    p = catalogue.joint(name)
    tab = local_table(p)
    np.testing.assert_allclose(tab.means(), catalogue.get(name).atoms, atol=1e-6)


@pytest.mark.parametrize(
    ('name', 'deviation'),
    [
        ('XOR', 0),
        ('RDN', 0),
        ('UNQ1', 0),
        ('UNQ2', 0),
        ('COPY', 0),
        ('RDN_XOR', 0),
        ('AND', -0.25),
    ],
)
def test_dual_variant_catalogue(name: str, deviation: float) -> None:
    # AND: supp(q*) = {(0,0,0), (1,1,0), (1,1,1)} leaves the data cells (0,1,0), (1,0,0) off it;
    # there g(0,1) + g(1,0) = -1 bit for every dual-feasible (λ, μ) (the gauge cancels), so the
    # dual variant's mean S is 0.25, not 0.5; on those cells x1 (or x2) alone fixes y and s = 0.
    tab = local_table(catalogue.joint(name), variant='dual')
    d = deviation
    want = np.asarray(catalogue.get(name).atoms) + np.array([d, -d, -d, d])
    np.testing.assert_allclose(tab.means(), want, atol=1e-6)
    assert tab.mean_deviation() == pytest.approx(deviation, abs=1e-6)


MIX5 = {'RDN': 1.0, 'UNQ1': 1.0, 'UNQ2': 1.0, 'UNQ1_WIDE': 1.0, 'XOR': 1.0}


def test_dual_variant_on_family_mixture_is_block_conditioned() -> None:
    # A mixture whose families share the labels: q* pairs one family's x1 with another's x2, so
    # BROJA's S (0.4) counts 0.2 bits of cross-family 'synergy' and the exact-mean terms give UNQ2
    # cells s = 1. The dual extension gives s = 0 on every one-sensor cell, s = 1 on XOR cells,
    # and its means are the family-weighted atoms Σ_f w_f PID(p_f) (independent truth).
    task = make_task(MIX5)
    p = task.joint
    exact = local_table(p, variant='exact_mean')
    dual = local_table(p, variant='dual')
    per_family = sum(
        w * np.asarray(exact_pid(family_joint(f)).atoms)
        for f, w in zip(task.families, task.weights, strict=True)
    )
    np.testing.assert_allclose(dual.means(), per_family, atol=1e-6)
    np.testing.assert_allclose(exact.means(), task.exact_truth.atoms, atol=1e-6)
    fam = task.family_of_1[:, None, None] * np.ones(p.shape, dtype=int)
    xor = task.families.index('XOR')
    on = p > 0
    np.testing.assert_allclose(dual.synergy[on & (fam == xor)], 1.0, atol=1e-6)
    np.testing.assert_allclose(dual.synergy[on & (fam != xor)], 0.0, atol=1e-6)
    unq2 = on & (fam == task.families.index('UNQ2'))
    np.testing.assert_allclose(exact.synergy[unq2], 1.0, atol=1e-6)  # the extrapolation


def test_one_sensor_cells_have_no_synergy() -> None:
    # UNQ1: y = x1, so q*(y|x1,x2) = p(y|x1) = 1 and s = 0 in every possible cell; XOR: s = 1.
    unq = local_table(catalogue.joint('UNQ1'))
    assert np.allclose(unq.synergy[unq.joint > 0], 0.0, atol=1e-6)
    xor = local_table(catalogue.joint('XOR'))
    assert np.allclose(xor.synergy[xor.joint > 0], 1.0, atol=1e-6)


@pytest.mark.parametrize('variant', ['dual', 'exact_mean'])
@pytest.mark.parametrize('name', ['AND', 'UNQ1', 'RDN'])
def test_cells_of_an_impossible_label_carry_no_synergy(name: str, variant: str) -> None:
    # A label p never shows with x1 (or x2) has log q*(y|x1,x2) = -inf: no interaction
    # evidence. The dual terms there were ~ +940 bits (λ floored at -1000, log p(y|.) at -60;
    # AND cell (0, 0, y=1) gave s = 1940), the exact-mean ones ~ -60; now s = 0, every term
    # bounded, and the means are still the atoms.
    p = catalogue.joint(name)
    tab = local_table(p, variant=variant)
    impossible = (p.sum(1) == 0)[:, None, :] | (p.sum(0) == 0)[None, :, :]  # (n1, n2, ny)
    assert impossible.any()
    np.testing.assert_allclose(tab.synergy[impossible], 0.0, atol=1e-9)
    for term in (tab.redundancy, tab.unique_1, tab.unique_2, tab.synergy):
        assert np.abs(term).max() <= 2 * 60 + np.log2(p.shape[2]) + 1e-6
    d = tab.mean_deviation()
    expected = np.asarray(catalogue.get(name).atoms) + np.array([d, -d, -d, d])
    np.testing.assert_allclose(tab.means(), expected, atol=1e-6)


def test_frames_with_a_label_unseen_in_their_cluster() -> None:
    # AND on continuous codes; test frames relabelled to the one label their (x1, x2) cell
    # never shows: histogram and discriminator terms give s = 0 for them, not ~ 1000 bits
    task = make_task('AND')
    train, test = task.sample(2000, seed=1), task.sample(400, seed=2)
    est = BROJALocal(n_clusters=2).fit(train.features_1, train.features_2, train.labels)
    c1 = est.pointwise(test.features_1, test.features_2, test.labels).cluster_1
    labels = test.labels.copy()
    assert est.table is not None
    never = est.table.joint.sum(1)[c1] == 0  # (N, ny): label never seen with the x1 cluster
    flip = never.any(1)
    assert flip.sum() > 50
    labels[flip] = never[flip].argmax(1)
    probs = np.full((len(labels), 2), 0.5)  # uninformative discriminators
    for variant, kwargs in [
        (v, k)
        for v in ('dual', 'exact_mean')
        for k in ({}, {'probs_1': probs, 'probs_2': probs, 'probs_12': probs})
    ]:
        pw = est.pointwise(test.features_1, test.features_2, labels, variant=variant, **kwargs)
        np.testing.assert_allclose(pw.synergy[flip], 0.0, atol=1e-4)
        for term in (pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy):
            assert np.abs(term).max() < 130


@pytest.mark.parametrize('name', ['XOR', 'AND', 'RDN', 'UNQ1'])
def test_continuous_means_match_exact_truth(name: str) -> None:
    task = make_task(name)
    train, test = task.sample(2000, seed=1), task.sample(2000, seed=2)
    n_clusters = task.joint.shape[0]
    est = BROJALocal(n_clusters=n_clusters, variant='exact_mean').fit(
        train.features_1, train.features_2, train.labels
    )
    pw = est.pointwise(test.features_1, test.features_2, test.labels)
    got = [pw.redundancy.mean(), pw.unique_1.mean(), pw.unique_2.mean(), pw.synergy.mean()]
    ex = task.exact_truth
    np.testing.assert_allclose(
        got, (ex.redundancy, ex.unique_1, ex.unique_2, ex.synergy), atol=0.05
    )


def test_alarm_ranking_against_every_family() -> None:
    # The synergy alarm's estimate (dual variant): XOR frames above every other family, UNQ2
    # included (the exact-mean variant extrapolates there: AUC about 0.5, pinned below).
    task = make_task(MIX5)
    train, test = task.sample(3000, seed=1), task.sample(3000, seed=2)
    est = BROJALocal(n_clusters=task.joint.shape[:2]).fit(
        train.features_1, train.features_2, train.labels
    )
    assert est.variant == 'dual'
    s = est.pointwise(test.features_1, test.features_2, test.labels).synergy
    s_exact = est.pointwise(test.features_1, test.features_2, test.labels, variant='exact_mean')
    xor_id = task.families.index('XOR')
    xor = test.family == xor_id
    for other, name in enumerate(task.families):
        if other == xor_id:
            continue
        keep = xor | (test.family == other)
        assert roc_auc_score(xor[keep], s[keep]) >= 0.95, name
    keep = xor | (test.family == task.families.index('UNQ2'))
    assert roc_auc_score(xor[keep], s_exact.synergy[keep]) < 0.7


def test_label_floor_keeps_one_sensor_frames_quiet() -> None:
    # At noise 1.0 a few frames per cluster carry a rare label; without the floor q* pairs an
    # uninformative cluster with that rare-label mass and one-sensor frames get s ~ 1 bit (AUC
    # ~0.5 against one family at n = 4000, as on the shipped model's dark-room frames). With
    # τ = 0.02 XOR frames rank above every family again, and the identities hold on the
    # cleaned histogram (the table's joint): means = exact atoms shifted by E_p[g].
    task = make_task(MIX5, ModalitySpec(noise=1.0), ModalitySpec(noise=1.0))
    train, test = task.sample(4000, seed=1), task.sample(4000, seed=2)
    est = BROJALocal(n_clusters=task.joint.shape[:2], label_floor=0.02).fit(
        train.features_1, train.features_2, train.labels
    )
    assert 0 < est.dropped < 0.02 * len(train.labels)
    assert est.table is not None
    assert est.table.joint.sum() == pytest.approx(1.0)
    res = exact_pid(est.table.joint)
    d = est.table.mean_deviation()
    np.testing.assert_allclose(
        est.table.means(), np.asarray(res.atoms) + np.array([d, -d, -d, d]), atol=1e-5
    )
    s = est.pointwise(test.features_1, test.features_2, test.labels).synergy
    xor_id = task.families.index('XOR')
    xor = test.family == xor_id
    for other, name in enumerate(task.families):
        if other != xor_id:
            keep = xor | (test.family == other)
            assert roc_auc_score(xor[keep], s[keep]) >= 0.95, name
    with pytest.raises(PIDInputError, match='label_floor'):
        BROJALocal(label_floor=1.0)


def test_frames_left_out_by_the_label_floor_are_marked_unseen() -> None:
    # 1 % label noise: the floor leaves the noisy frames out of the histogram; their unique
    # terms sit at the log floors (~ -60 bits), so they are marked, and the means over the
    # seen frames are the table's (the audit averaged them in: R 0.09 instead of 0.25)
    from dmil_ros.audit.terms import broja_frames

    task = make_task({'RDN': 1, 'UNQ1': 1, 'UNQ2': 1, 'XOR': 1}, seed=0)
    sample = task.sample(4000, seed=1)
    y = sample.labels.copy()
    flip = np.random.default_rng(2).random(len(y)) < 0.01
    y[flip] = 1 - y[flip]
    est = BROJALocal(n_clusters=12, pca_dim=5, variant='dual', label_floor=0.02)
    est.fit(sample.features_1, sample.features_2, y)
    pw = est.pointwise(sample.features_1, sample.features_2, y)
    assert est.table is not None
    assert 0 < est.dropped == int((~pw.seen).sum())
    terms = np.column_stack([pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy])
    assert terms[~pw.seen].min() < -30
    np.testing.assert_allclose(terms[pw.seen].mean(0), est.table.means(), atol=1e-4)
    audit = broja_frames(sample.features_1, sample.features_2, y, 12)
    assert int(np.isnan(audit.terms).any(1).sum()) == est.dropped
    np.testing.assert_allclose(np.nanmean(audit.terms, 0), est.table.means(), atol=1e-4)


@pytest.mark.parametrize('shape', [(3, 4, 2), (6, 5, 3), (9, 7, 4)])
def test_label_by_label_dual_fit_equals_the_joint_fit(shape: tuple[int, int, int]) -> None:
    """The per-label least squares give the one big fit's minimum-norm solution."""
    rng = np.random.default_rng(sum(shape))
    p = rng.random(shape)
    p[rng.random(shape) < 0.4] = 0.0
    q = exact_pid(p / p.sum()).q
    # reference: the whole fit as one (cells, (n1 + n2) ny) design
    n1, n2, ny = shape
    i1, i2, y = np.nonzero(q > 0)
    w = np.sqrt(q[i1, i2, y])
    design = np.zeros((len(y), (n1 + n2) * ny))
    design[np.arange(len(y)), i1 * ny + y] = 1.0
    design[np.arange(len(y)), n1 * ny + i2 * ny + y] = 1.0
    target = np.log2(q[i1, i2, y] / q.sum(2)[i1, i2])
    coef, *_ = np.linalg.lstsq(design * w[:, None], target * w, rcond=None)
    a, b = _fit_duals(q)
    np.testing.assert_allclose(a, coef[: n1 * ny].reshape(n1, ny), atol=1e-10)
    np.testing.assert_allclose(b, coef[n1 * ny :].reshape(n2, ny), atol=1e-10)


def test_bad_inputs() -> None:
    with pytest.raises(PIDInputError, match='n_clusters'):
        BROJALocal(n_clusters=0)
    with pytest.raises(PIDInputError, match=r'n_clusters: expected an integer, got 2\.5'):
        BROJALocal(n_clusters=2.5)  # type: ignore[arg-type]
    assert BROJALocal(n_clusters=np.int64(3)).n_clusters == (3, 3)  # was a TypeError
    with pytest.raises(PIDInputError, match='fit'):
        BROJALocal().pointwise(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2, dtype=int))
    with pytest.raises(PIDInputError, match='shape'):
        local_table(np.ones((2, 2, 2)), np.ones((2, 2, 3)))
    with pytest.raises(PIDInputError, match='variant'):
        local_table(np.ones((2, 2, 2)), variant='softmax')
    with pytest.raises(PIDInputError, match='variant'):
        BROJALocal(variant='nope')
    f = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(PIDInputError, match='n_classes 1'):  # was an IndexError
        BROJALocal(n_clusters=2).fit(f, f, np.arange(20) % 2, n_classes=1)


def test_onnx_round_trip(tmp_path: Path) -> None:
    ort = pytest.importorskip('onnxruntime')
    ort.set_default_logger_severity(3)
    task = make_task('AND')
    train, test = task.sample(2000, seed=1), task.sample(900, seed=2)
    est = BROJALocal(n_clusters=6, pca_dim=3).fit(train.features_1, train.features_2, train.labels)
    rng = np.random.default_rng(0)
    lp = [np.log(rng.dirichlet(np.ones(2), size=len(test))).astype(np.float32) for _ in range(3)]
    args = (
        torch.as_tensor(test.features_1, dtype=torch.float32),
        torch.as_tensor(test.features_2, dtype=torch.float32),
        torch.as_tensor(test.labels),
        *(torch.as_tensor(a) for a in lp),
    )
    names = ['f1', 'f2', 'labels', 'log_p1', 'log_p2', 'log_p12']
    batch = torch.export.Dim('batch')
    path = tmp_path / 'broja_local.onnx'
    torch.onnx.export(
        est.module,
        args,
        str(path),
        dynamo=True,
        input_names=names,
        output_names=['terms'],
        dynamic_shapes=tuple({0: batch} for _ in args),
    )
    sess = ort.InferenceSession(str(path))
    got = sess.run(None, {k: v.numpy()[:500] for k, v in zip(names, args, strict=True)})[0]
    with torch.inference_mode():
        ref = est.module(*(a[:500] for a in args)).numpy()
    diff = float(np.abs(got - ref).max())
    print(f'BROJA-local ONNX max abs diff: {diff:.2e} bits')
    assert diff < 1e-4
    probs = {
        k: np.exp(v[:500]) for k, v in zip(('probs_1', 'probs_2', 'probs_12'), lp, strict=True)
    }
    pw = est.pointwise(test.features_1[:500], test.features_2[:500], test.labels[:500], **probs)
    terms = np.column_stack([pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy])
    np.testing.assert_allclose(got, terms, atol=1e-4)


@pytest.mark.parametrize('variant', ['dual', 'exact_mean'])
def test_the_exported_module_computes_the_estimators_terms(variant: str) -> None:
    # the numpy estimator and its torch twin: same cells, same terms, with the table's
    # conditionals and with discriminators. RDN clusters are label-pure, and every other frame
    # is asked about the label its clusters never showed (the 'impossible' cells)
    task = make_task('RDN')
    train, test = task.sample(3000, seed=3), task.sample(800, seed=4)
    est = BROJALocal(n_clusters=(5, 7), pca_dim=3, variant=variant)
    est.fit(train.features_1, train.features_2, train.labels)
    module = est.export_module()
    labels = np.where(np.arange(len(test.labels)) % 2 == 0, test.labels, 1 - test.labels)
    f1 = torch.as_tensor(test.features_1, dtype=torch.float32)
    f2 = torch.as_tensor(test.features_2, dtype=torch.float32)
    y = torch.as_tensor(labels)
    rng = np.random.default_rng(1)
    probs = [rng.dirichlet(np.ones(2), size=len(test.labels)) for _ in range(3)]
    with torch.inference_mode():
        assert np.array_equal(module.assign(f1, 1).numpy(), est.assign(test.features_1, 1))
        assert np.array_equal(module.assign(f2, 2).numpy(), est.assign(test.features_2, 2))
        table = module(f1, f2, y).numpy()
        heads = module(f1, f2, y, *(torch.log(torch.as_tensor(p).float()) for p in probs)).numpy()
    named = dict(zip(('probs_1', 'probs_2', 'probs_12'), probs, strict=True))
    for got, kw in ((table, {}), (heads, named)):
        pw = est.pointwise(test.features_1, test.features_2, labels, **kw)
        assert 0 < np.count_nonzero(~pw.seen) < len(labels)
        terms = np.column_stack([pw.redundancy, pw.unique_1, pw.unique_2, pw.synergy])
        np.testing.assert_allclose(terms, got, atol=1e-5)


def test_pointwise_checks_and_normalises_its_inputs() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(64, 2))
    y = (f[:, 0] > 0).astype(np.int64)
    est = BROJALocal(n_clusters=3).fit(f, f, y)
    bad = f.copy()
    bad[3, 0] = np.nan  # was put in cluster 0 with finite terms
    with pytest.raises(PIDInputError, match='features_1'):
        est.pointwise(bad, f, y)
    with pytest.raises(PIDInputError, match='labels'):  # were truncated silently
        est.pointwise(f, f, y + 0.7)
    with pytest.raises(PIDInputError, match='features_2: 3 columns, fitted on 2'):
        est.pointwise(f, np.c_[f, f[:, :1]], y)
    probs = np.full((64, 2), 0.5)
    with pytest.raises(PIDInputError, match='probs_1'):  # was a torch RuntimeError
        est.pointwise(f, f, y, probs_1=probs[:10], probs_2=probs, probs_12=probs)
    # a scaled probability row is the same distribution (it shifted every term by log2 10)
    once = est.pointwise(f, f, y, probs_1=probs, probs_2=probs, probs_12=probs)
    scaled = est.pointwise(f, f, y, probs_1=probs * 10, probs_2=probs * 10, probs_12=probs * 10)
    np.testing.assert_allclose(scaled.synergy, once.synergy, atol=1e-6)


def test_features_far_from_zero_keep_their_structure(caplog: pytest.LogCaptureFixture) -> None:
    """The fit's histogram came from the float32 map f w + b (as the exported module), where
    an offset of 1.7e9 (epoch seconds) over a 60 s step cancelled: UNQ1's U1 fell from 1 to
    0.09 bit unannounced (review 22b #5). The fit assigns in float64; the float32 assign()
    names the offset once. A constant column, whatever its value, is no offset."""
    rng = np.random.default_rng(0)
    n = 2000
    b1, b2 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x2 = np.column_stack([b2 + 0.05 * rng.normal(size=n), np.full(n, 1e10)])
    x1 = 1.7e9 + 60.0 * b1[:, None] + 3.0 * rng.normal(size=(n, 2))
    fit = BROJALocal(n_clusters=4, seed=0).fit(x1, x2, b1)
    assert fit.pid.unique_1 == pytest.approx(1.0, abs=0.02)
    assert not caplog.records
    fit.assign(x1, 1)
    fit.assign(x1, 1)
    fit.assign(x2, 2)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith('BROJALocal: features_1 lie 5.64e+07 spreads from 0')


def test_an_unused_source_value_fits_without_warnings() -> None:
    """p(y|x1) of an x1 that never occurs was 0 / 0 outside errstate: a RuntimeWarning, an
    error under -W error (review 22b #11); the means are AND's."""
    p = np.zeros((3, 2, 2))
    p[:2] = catalogue.joint('AND')  # x1 = 2 never occurs
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        table = local_table(p)
    np.testing.assert_allclose(table.means(), exact_pid(p).atoms, atol=1e-6)
