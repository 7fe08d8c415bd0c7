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

"""Dataset-level audit against the simulator's ground truth (oracle model, no bag I/O)."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import oracle_bag

from dmil_ros.actions import ACTIONS, COMPONENTS, FAMILIES
from dmil_ros.audit.bagresult import BagResult
from dmil_ros.audit.dataset_pid import dataset_pid
from dmil_ros.audit.merge import MergeOptions, _spike_families, merge
from dmil_ros.pid import exact_pid
from dmil_ros.sim.families import pooled_index, pooled_joint


@pytest.fixture(scope='module')
def oracle_bags() -> list[BagResult]:
    return [oracle_bag(1500, seed=11, name='a'), oracle_bag(1500, seed=12, name='b')]


@pytest.fixture(scope='module')
def merged(oracle_bags: list[BagResult]) -> tuple[object, dict]:
    return merge(oracle_bags, MergeOptions(n_clusters=12))


def test_spikes_cover_synergy_segments_not_redundant_frames(merged: tuple[object, dict]) -> None:
    _, summary = merged
    spikes = summary['ground_truth']['spikes']
    assert spikes['S_segments']['total'] >= 8
    assert spikes['S_segments']['fraction'] >= 0.9
    assert spikes['R']['flagged_fraction'] <= 0.10
    assert summary['spikes'], 'no spikes found'


def test_lsmi_means_follow_family_truth(merged: tuple[object, dict]) -> None:
    table, summary = merged
    fam = table.column('family').to_numpy(zero_copy_only=False)
    syn = table.column('lsmi_data_synergy').to_numpy()
    red = table.column('lsmi_data_redundancy').to_numpy()
    # S frames carry about 1 bit of synergy, R frames about none; R frames are redundant
    assert np.nanmean(syn[fam == 'S']) > 0.7
    assert abs(np.nanmean(syn[fam == 'R'])) < 0.2
    assert np.nanmean(red[fam == 'R']) > np.nanmean(red[fam == 'S']) + 0.5
    assert summary['lsmi_mean']['data'] is not None


def test_data_pid_matches_ground_truth(
    merged: tuple[object, dict], oracle_bags: list[BagResult]
) -> None:
    _, summary = merged
    # data level: the exact PID of the latent cues and the recorded action
    truth = summary['ground_truth']['pid']
    # decision level (methods.md §5): the exact PID of p(latent cells) p_θ(y | x), the oracle's
    # predictive distribution (its design conditionals smoothed by 1e-3: less information than
    # its argmax, which is the recorded action)
    cells = np.zeros((*pooled_joint(dict.fromkeys(FAMILIES, 1.0)).shape[:2], 4))
    for bag in oracle_bags:
        a = bag.arrays
        for f, c, li, p in zip(
            a['family'], a['camera_latent'], a['lidar_latent'], a['probs'], strict=True
        ):
            cells[pooled_index(FAMILIES[f], int(c), int(li))] += p
    decision = dict(zip(COMPONENTS, exact_pid(cells).atoms, strict=True))
    assert decision['redundancy'] < truth['redundancy'] - 0.1  # the smoothing shows
    for key, want in (('data_pid', truth), ('model_pid', decision)):
        got = summary[key]
        assert got is not None, summary['pid_estimator']
        for comp in COMPONENTS:
            assert abs(got[comp] - want[comp]) <= 0.05, (key, comp, got, want)


def test_model_pid_lsmi_output_fills_the_node_terms_not_the_model_level() -> None:
    """A model's pid_lsmi output is what the node publishes (node_*, spikes), unrefitted; the
    model-level terms are refitted on its predictions like any model's."""
    bag = oracle_bag(400, seed=13, name='own')
    rng = np.random.default_rng(0)
    own = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    bag.arrays['self_lsmi'] = own
    table, summary = merge([bag], MergeOptions(n_clusters=12))
    got = np.stack([table.column(f'node_{c}').to_numpy() for c in COMPONENTS], axis=1)
    np.testing.assert_array_equal(got, own.astype(np.float64))
    assert summary['node_mean']['source'] == 'model output pid_lsmi'
    assert summary['spikes_from'] == 'node (model output pid_lsmi)'
    model = np.stack([table.column(f'lsmi_model_{c}').to_numpy() for c in COMPONENTS], axis=1)
    assert not np.allclose(model, own, equal_nan=True)
    assert summary['lsmi_mean']['source']['model'] == 'lsmi refit on the audit frames'
    assert 'model' in summary['lsmi_mean']['delta']  # refitted
    assert summary['lsmi_mean']['data'] is not None  # data level still fitted


def _shortcut_bag(frames: int = 3000) -> BagResult:
    """XOR and UNQ1 frames half and half (truth: U_cam 0.5, S 0.5 bits) and a camera-shortcut
    model: it acts on the camera bit alone (right on the UNQ1 frames and half the XOR ones),
    with a pid_broja head fitted on the recorded labels, as the export fits it."""
    import torch

    from dmil_ros.pid.broja_local import BROJALocal
    from dmil_ros.pid.tasks import ModalitySpec, make_task

    spec = ModalitySpec(4, 4.0, 0.1)
    task = make_task({'XOR': 0.5, 'UNQ1': 0.5}, spec, spec, seed=0)
    sample = task.sample(frames, seed=1)
    label = np.asarray(sample.labels, np.int64)
    pred = np.asarray(sample.latent_1 % 2, np.int64)  # the camera bit
    f1 = np.asarray(sample.features_1, np.float64)
    f2 = np.asarray(sample.features_2, np.float64)
    probs = np.full((frames, 4), 0.01, np.float32)
    probs[np.arange(frames), pred] = 0.97
    head = BROJALocal(n_clusters=8, seed=0).fit(f1, f2, label, n_classes=4)
    with torch.inference_mode():
        own = head.export_module()(
            torch.as_tensor(f1, dtype=torch.float32),
            torch.as_tensor(f2, dtype=torch.float32),
            torch.as_tensor(pred),
        ).numpy()
    nan = np.full((frames, 4), np.nan, np.float32)
    arrays = {
        'stamp': np.arange(frames, dtype=np.int64) * 50_000_000,
        'lidar_stamp': np.arange(frames, dtype=np.int64) * 50_000_000,
        'probs': probs,
        'gates': nan,
        'p_camera': probs,
        'p_lidar': np.full((frames, 4), 0.25, np.float32),
        'p_joint': probs,
        'feat_camera': f1.astype(np.float32),
        'feat_lidar': f2.astype(np.float32),
        'self_lsmi': nan,
        'self_broja': own,
        'label': label,
        'family': np.full(frames, -1, np.int64),
        'segment': np.full(frames, -1, np.int64),
        'camera_latent': np.full(frames, -1, np.int64),
        'lidar_latent': np.full(frames, -1, np.int64),
        'alert': np.zeros(frames, bool),
    }
    return BagResult('shortcut', arrays, {'status': 'ok', 'errors': []})


def test_the_model_level_shows_a_shortcut_the_node_terms_hide() -> None:
    """Review 20a #1: the model level is fitted on the model's predictions, so a camera-shortcut
    model shows U_cam and no synergy (its decision-level truth: U_cam 1 bit, S 0) while the data
    holds 0.5 bit of synergy; its label-fitted pid_broja head, read at its predictions, gives
    the XOR frames it guesses right their synergy and stays in node_*."""
    _, summary = merge([_shortcut_bag()], MergeOptions(n_clusters=8))
    model = summary['broja_local_mean']['model']
    assert model['unique_camera'] > 0.8
    assert model['synergy'] < 0.1
    assert summary['model_pid']['unique_camera'] > 0.8  # decision-level CVX agrees
    assert summary['model_pid']['synergy'] < 0.1
    assert summary['data_pid']['synergy'] > 0.35  # ... where the data holds synergy
    node = summary['node_mean']
    assert node['source'] == 'model output pid_broja'
    assert node['terms']['synergy'] > 0.25  # the data's synergy, on the frames guessed right
    assert summary['gapscore_from'] == 'broja_model'
    assert summary['spikes_from'] == 'node (model output pid_broja)'


def test_gapscore_and_its_cards_use_the_model_level_terms() -> None:
    """GapScore is decision level (methods.md §5): computed from the model-level BROJA-local
    terms, and the report's GapScore cards show those terms, not the node's (review 20d #2)."""
    from dmil_ros.audit.report import render_report, top_gapscore_rows
    from dmil_ros.audit.tables import matrix
    from dmil_ros.audit.terms import gapscore

    bag = _shortcut_bag(1200)
    table, summary = merge([bag], MergeOptions(n_clusters=8))
    a = bag.arrays
    for group, expect in (('broja_model', True), ('node', False)):
        terms = matrix(table, tuple(f'{group}_{c}' for c in COMPONENTS))
        want = gapscore(terms, a['p_camera'], a['p_lidar'], a['probs'].astype(np.float64))
        got = table.column('gapscore').to_numpy()
        same = np.allclose(got, want[:, 3], equal_nan=True, atol=1e-6)
        assert same is expect, group
    html = render_report(summary, table, {})
    row = top_gapscore_rows(table)[0]
    syn = table.column('broja_model_synergy').to_numpy()[row]
    assert f'<tr><th>S (broja_model)</th><td>{syn:.3f}</td></tr>' in html
    assert '(node)</th>' not in html


def _terms(table: object, group: str) -> np.ndarray:
    return np.stack([table.column(f'{group}_{c}').to_numpy() for c in COMPONENTS], axis=1)


def test_model_level_lsmi_uses_the_models_probabilities_not_the_joint_head() -> None:
    """The model level is fitted on the model's own decision: its action as the target and its
    predictive distribution (probs) as the joint discriminator; p_joint (the joint head) is
    the data level's. With a joint head that says nothing (uniform), the model-level terms are
    those of an LSMI fit on probs."""
    from dmil_ros.audit.terms import lsmi_frames

    bag = _shortcut_bag(1200)
    a = bag.arrays
    a['p_joint'] = np.full_like(a['probs'], 0.25)
    opts = MergeOptions(n_clusters=8)
    table, _ = merge([bag], opts)
    pred = a['probs'].argmax(axis=1)
    inputs = [a[k].astype(np.float64) for k in ('feat_camera', 'feat_lidar')]
    heads = [a[k].astype(np.float64) for k in ('p_camera', 'p_lidar')]
    want = lsmi_frames(*inputs, pred, *heads, a['probs'].astype(np.float64), opts.terms)
    np.testing.assert_allclose(_terms(table, 'lsmi_model'), want.terms, atol=1e-5)
    other = lsmi_frames(*inputs, pred, *heads, a['p_joint'].astype(np.float64), opts.terms)
    assert not np.allclose(want.terms, other.terms, atol=1e-3)


def test_per_action_means_group_model_terms_by_action_and_data_terms_by_label() -> None:
    """summary per_action: the model-level means over the frames the model sent to the action,
    the data-level ones over the frames labelled with it (a shortcut model and its labels
    disagree on a quarter of the frames)."""
    table, summary = merge([_shortcut_bag(1200)], MergeOptions(n_clusters=8))
    action = table.column('action').to_numpy(zero_copy_only=False)
    label = table.column('label').to_numpy(zero_copy_only=False)
    assert 0.1 < (action != label).mean() < 0.4
    for name in ACTIONS:
        got = summary['per_action'][name]
        for key, group, rows in (
            ('model_lsmi', 'lsmi_model', action == name),
            ('data_lsmi', 'lsmi_data', label == name),
        ):
            terms = _terms(table, group)[rows]
            terms = terms[np.isfinite(terms).all(axis=1)]
            if not len(terms):
                assert got[key] is None
                continue
            want = dict(zip(COMPONENTS, terms.mean(axis=0).tolist(), strict=True))
            assert got[key] == pytest.approx(want, abs=1e-5), (name, key)


def test_s_segments_of_two_bags_are_two_segments() -> None:
    """Segment ids restart in every bag: segment 0 of bag a and segment 0 of bag b are two S
    segments, one covered by spikes, one not."""
    n = 20
    bag = np.repeat([0, 1], n // 2)
    out = _spike_families(
        bag == 0, np.zeros(n, bool), np.full(n, FAMILIES.index('S')), np.zeros(n, np.int64), bag
    )
    assert (out['S_segments']['covered'], out['S_segments']['total']) == (1, 2)


def test_model_pid_is_the_pid_of_the_predictive_distribution() -> None:
    """Review 20a #2 (methods.md §5): an indifferent model, p(y=1|x) = 0.5 ± 0.02 flipping with
    x1 XOR x2, holds almost no synergy (0.001 bits of exact PID); its argmax holds 1 bit."""
    rng = np.random.default_rng(0)
    n = 4000
    x1, x2 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    p1 = 0.5 + 0.02 * np.where(x1 ^ x2, 1.0, -1.0)  # (N,) p(y = 1 | x)
    probs = np.column_stack([1 - p1, p1, np.zeros(n), np.zeros(n)])  # (N, 4)
    f1 = np.eye(2)[x1] + 0.01 * rng.standard_normal((n, 2))
    f2 = np.eye(2)[x2] + 0.01 * rng.standard_normal((n, 2))
    pred = probs.argmax(axis=1)
    hard, _ = dataset_pid(f1, f2, pred, None, 0)
    soft, meta = dataset_pid(f1, f2, pred, None, 0, probs=probs)
    cells = np.zeros((2, 2, 4))
    np.add.at(cells, (x1, x2), probs)
    truth = exact_pid(cells)
    assert hard is not None
    assert soft is not None
    assert hard['synergy'] > 0.95
    assert soft['synergy'] == pytest.approx(truth.synergy, abs=0.002)
    assert truth.synergy < 0.002
    assert meta['target'] == 'predictive distribution'


def test_node_pid_broja_rows_on_floored_table_entries_are_left_out() -> None:
    """The model's pid_broja rows that looked up a floored table entry (the fitting frames never
    showed the predicted action with the frame's clusters) are NaN, counted; the rest are kept."""
    import torch

    from dmil_ros.pid.broja_local import FLOOR, BROJALocal
    from dmil_ros.runtime.contract import NO_EVIDENCE_BITS

    assert NO_EVIDENCE_BITS == -FLOOR / 2  # the runtime's copy (no scipy import there)
    bag = oracle_bag(600, seed=14, name='own')
    a = bag.arrays
    f1, f2 = a['feat_camera'].astype(np.float64), a['feat_lidar'].astype(np.float64)
    est = BROJALocal(n_clusters=10, seed=0).fit(f1, f2, a['label'], n_classes=4)
    # a model that predicts another action on 10 % of the frames, with a pid_broja head fitted
    # on the labels
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(bag.frames) < 0.1, (a['label'] + 1) % 4, a['label'])
    a['probs'] = np.eye(4, dtype=np.float32)[pred] * 0.9 + 0.025
    with torch.inference_mode():
        own = est.export_module()(
            torch.as_tensor(a['feat_camera']), torch.as_tensor(a['feat_lidar']),
            torch.as_tensor(pred),
        ).numpy()  # fmt: skip
    a['self_broja'] = own
    # the table entries each row looked up, independently of the audit's threshold
    c1, c2, tab = est.assign(f1, 1), est.assign(f2, 2), est.tables['dual']
    floored = (
        (tab.log_p1[c1, pred] <= FLOOR)
        | (tab.log_p2[c2, pred] <= FLOOR)
        | (tab.log_p12[c1, c2, pred] <= FLOOR)
    )
    assert 0 < floored.sum() < 0.2 * bag.frames
    table, summary = merge([bag], MergeOptions(n_clusters=10))
    got = np.stack([table.column(f'node_{c}').to_numpy() for c in COMPONENTS], axis=1)
    assert np.array_equal(np.isnan(got).all(axis=1), floored)
    np.testing.assert_array_equal(got[~floored], own[~floored].astype(np.float64))
    assert summary['node_mean']['no_evidence'] == int(floored.sum())
    mean = summary['node_mean']['terms']['redundancy']
    assert mean == pytest.approx(float(own[~floored, 0].astype(np.float64).mean()), abs=1e-6)


def test_one_non_finite_frame_keeps_the_node_terms_of_the_others() -> None:
    """A frame whose model outputs are NaN stays NaN; the other frames keep the model's own
    pid_broja, and the spikes still follow it (one such frame sent every frame of every bag to
    a refit, and the spikes to LSMI: review 19a #1)."""
    bag = oracle_bag(400, seed=15, name='own')
    a = bag.arrays
    rng = np.random.default_rng(1)
    a['self_lsmi'] = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    a['self_broja'] = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    bad = 7
    for key in ('probs', 'self_lsmi', 'self_broja'):
        a[key][bad] = np.nan
    table, summary = merge([bag], MergeOptions(n_clusters=10))
    assert summary['node_mean']['source'] == 'model output pid_broja'
    assert summary['spikes_from'] == 'node (model output pid_broja)'
    keep = np.arange(bag.frames) != bad
    got = np.stack([table.column(f'node_{c}').to_numpy() for c in COMPONENTS], axis=1)
    assert np.isnan(got[bad]).all()
    np.testing.assert_array_equal(got[keep], a['self_broja'][keep].astype(np.float64))


def test_sidecar_truth_only_when_the_bags_agree() -> None:
    """Without frame-level ground truth, one bag's sidecar is not the truth of several bags."""
    from dmil_ros.audit.bagresult import BagResult

    def bag(name: str, redundancy: float) -> BagResult:
        return BagResult.empty(name, {'sidecar': {'mix_pid': {'redundancy': redundancy}}})

    _, differ = merge([bag('a', 1.0), bag('b', 0.5)])
    assert differ['ground_truth']['pid'] is None
    assert 'different mix_pid' in differ['ground_truth']['pid_note']
    assert set(differ['ground_truth']['sidecars']) == {'a', 'b'}
    _, agree = merge([bag('a', 1.0), bag('c', 1.0)])
    assert agree['ground_truth']['pid'] == {'redundancy': 1.0}


def test_model_pid_on_the_labelled_frames_when_some_bags_are_unlabelled() -> None:
    """data_pid sees the labelled bags only; the shortcut check's model PID must see the same
    frames: it equals the model_pid of an audit of the labelled bag alone."""
    from dmil_ros.audit.report import render_report

    labelled = oracle_bag(600, seed=21, name='a_labelled')
    unlabelled = oracle_bag(600, seed=22, name='b_unlabelled')
    for key in ('label', 'family', 'segment', 'camera_latent', 'lidar_latent'):
        unlabelled.arrays[key] = np.full(unlabelled.frames, -1, np.int64)
    opts = MergeOptions(n_clusters=12)
    _, alone = merge([labelled], opts)
    table, mixed = merge([unlabelled, labelled], opts)
    assert alone['model_labelled_pid'] is None  # every frame labelled: model_pid is comparable
    assert mixed['frames']['labelled'] == labelled.frames
    assert mixed['data_pid'] == alone['data_pid']
    assert mixed['model_labelled_pid'] == alone['model_pid']
    assert mixed['pid_estimator']['model_labelled']['frames'] == labelled.frames
    assert mixed['pid_estimator']['model']['frames'] == labelled.frames + unlabelled.frames
    # the report's bars use the comparable one
    assert 'model (predictive distribution, labelled frames)' in render_report(mixed, table, {})


def test_lsmi_not_fitted_is_not_reported_as_a_fit() -> None:
    """One label class: no data-level LSMI fit, and the summary says so (it reported a δ of 0
    and 'lsmi refit on the audit frames')."""
    bag = oracle_bag(200, seed=16, name='one')
    bag.arrays['label'][:] = 0
    _, summary = merge([bag], MergeOptions(n_clusters=10))
    assert summary['lsmi_mean']['data'] is None
    assert 'data' not in summary['lsmi_mean']['delta']
    assert summary['lsmi_mean']['source']['data'].startswith('not fitted')
    assert 'model' in summary['lsmi_mean']['delta']  # the predictions still vary


def test_report_names_why_there_is_no_shortcut_check() -> None:
    """Every frame labelled with one action: the report gives the estimator's reason, not
    'needs labelled bags'; with nothing to draw it leaves the bar chart out, whose empty plot
    made the page's own check report an error (review 19a #9)."""
    from dmil_ros.audit.report import render_report

    bag = oracle_bag(200, seed=17, name='one')
    bag.arrays['label'][:] = 0
    for key in ('family', 'segment', 'camera_latent', 'lidar_latent'):
        bag.arrays[key] = np.full(bag.frames, -1, np.int64)
    table, summary = merge([bag], MergeOptions(n_clusters=10))
    assert summary['data_pid'] is None
    assert summary['frames']['labelled'] == bag.frames
    page = render_report(summary, table, {})
    assert 'needs labelled bags' not in page.lower()
    assert '1 distinct target value(s)' in page
    assert 'id="pid-bars"' in page  # the model PID is still drawn
    summary['model_pid'] = None
    page = render_report(summary, table, {})
    assert 'id="pid-bars"' not in page
    assert 'No dataset-level PID and no ground truth to draw.' in page
