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

from dmil_ros.actions import COMPONENTS
from dmil_ros.audit.merge import MergeOptions, merge


@pytest.fixture(scope='module')
def merged() -> tuple[object, dict]:
    bags = [oracle_bag(1500, seed=11, name='a'), oracle_bag(1500, seed=12, name='b')]
    return merge(bags, MergeOptions(n_clusters=12))


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


def test_data_pid_matches_ground_truth(merged: tuple[object, dict]) -> None:
    pytest.importorskip('dmil_ros.pid', reason='pid package missing')
    from dmil_ros import pid

    if not hasattr(pid, 'cvx_pid'):
        pytest.skip('dmil_ros.pid.cvx_pid (issue 3) not available yet')
    _, summary = merged
    truth = summary['ground_truth']['pid']
    for key in ('data_pid', 'model_pid'):
        got = summary[key]
        assert got is not None, summary['pid_estimator']
        for comp in COMPONENTS:
            assert abs(got[comp] - truth[comp]) <= 0.05, (key, comp, got, truth)


def test_model_pid_lsmi_output_used_for_model_terms() -> None:
    """A model that outputs pid_lsmi gets those terms as its model-level terms, unrefitted."""
    bag = oracle_bag(400, seed=13, name='own')
    rng = np.random.default_rng(0)
    own = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    bag.arrays['self_lsmi'] = own
    table, summary = merge([bag], MergeOptions(n_clusters=12))
    got = np.stack([table.column(f'lsmi_model_{c}').to_numpy() for c in COMPONENTS], axis=1)
    np.testing.assert_array_equal(got, own.astype(np.float64))
    assert summary['lsmi_mean']['source']['model'] == 'model output pid_lsmi'
    assert 'model' not in summary['lsmi_mean']['delta']  # no refit
    assert summary['lsmi_mean']['data'] is not None  # data level still fitted


def test_model_pid_broja_rows_on_floored_table_entries_are_left_out() -> None:
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
    got = np.stack([table.column(f'broja_model_{c}').to_numpy() for c in COMPONENTS], axis=1)
    assert np.array_equal(np.isnan(got).all(axis=1), floored)
    np.testing.assert_array_equal(got[~floored], own[~floored].astype(np.float64))
    assert summary['broja_local_mean']['no_evidence']['model'] == int(floored.sum())
    mean = summary['broja_local_mean']['model']['redundancy']
    assert mean == pytest.approx(float(own[~floored, 0].astype(np.float64).mean()), abs=1e-6)


def test_one_non_finite_frame_keeps_the_model_outputs_for_the_others() -> None:
    """A frame whose model outputs are NaN stays NaN; the other frames keep the model's own
    pid_lsmi / pid_broja, and the spikes still follow pid_broja (one such frame sent every
    frame of every bag to a refit, and the spikes to LSMI: review 19a #1)."""
    bag = oracle_bag(400, seed=15, name='own')
    a = bag.arrays
    rng = np.random.default_rng(1)
    a['self_lsmi'] = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    a['self_broja'] = rng.normal(0.0, 0.5, (bag.frames, 4)).astype(np.float32)
    bad = 7
    for key in ('probs', 'self_lsmi', 'self_broja'):
        a[key][bad] = np.nan
    table, summary = merge([bag], MergeOptions(n_clusters=10))
    assert summary['lsmi_mean']['source']['model'] == 'model output pid_lsmi'
    assert summary['spikes_from'].startswith('broja_model (model output pid_broja)')
    keep = np.arange(bag.frames) != bad
    for prefix, key in (('lsmi_model', 'self_lsmi'), ('broja_model', 'self_broja')):
        got = np.stack([table.column(f'{prefix}_{c}').to_numpy() for c in COMPONENTS], axis=1)
        assert np.isnan(got[bad]).all()
        np.testing.assert_array_equal(got[keep], a[key][keep].astype(np.float64))


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
    assert 'model (predictions, labelled frames)' in render_report(mixed, table, {})


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
