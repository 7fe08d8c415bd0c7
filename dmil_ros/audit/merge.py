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

"""The merge stage of an audit: per-bag results in, frame table and ``summary.json`` out.

Everything that needs the whole data set happens here, once, in bag order (so 1 worker and N
workers give identical tables): the per-frame LSMI terms (``lsmi_model_*``, ``lsmi_data_*``)
and BROJA-consistent local terms (``broja_model_*``, ``broja_data_*``; see
:mod:`dmil_ros.audit.terms`), GapScore, the offline synergy spikes per bag, the dataset-level
PID from the exact CVX estimator with the recorded labels (``data_pid``) and with the model's
predictive distribution (``model_pid``, decision-level PID as methods.md §5 defines it;
``model_labelled_pid`` on the labelled frames alone when some bags have no labels), and, for
simulator bags, the ground truth (:mod:`dmil_ros.audit.dataset_pid`).

Model level means how the model uses its inputs (methods.md §5), so its per-frame terms are
always fitted on the audit frames with the model's predictions as the target, the same for
every model. A model's own ``pid_broja`` / ``pid_lsmi`` heads are not model level: they are
fitted at export on the recorded actions and read at the predicted action, so they give the
data's interactions for the chosen action (a camera-shortcut model guessing an XOR frame right
gets the frame's synergy). They are what the node publishes, so they fill ``node_*``, and the
spikes follow them, so that the audit and the node's synergy alarm agree (the refitted LSMI
terms for a model without them; ``summary['spikes_from']`` names it). GapScore, a
decision-level score, uses the model-level BROJA-local terms (``summary['gapscore_from']``).
The ``alert`` column is the node's own monitor, run by the per-bag stage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from dmil_ros.actions import ACTIONS, COMPONENTS, FAMILIES
from dmil_ros.audit.bagresult import ARRAYS, BagResult
from dmil_ros.audit.dataset_pid import (
    as_atoms,
    dataset_pid,
    default_clusters,
    ground_truth,
    sidecar_atoms,
)
from dmil_ros.audit.errors import AuditError
from dmil_ros.audit.spikes import SpikeConfig, find_spikes, segment_coverage, spike_mask
from dmil_ros.audit.tables import (
    GAP_COLUMNS,
    GATE_COLUMNS,
    PROB_COLUMNS,
    TERM_COLUMNS,
    build_table,
)
from dmil_ros.audit.terms import (
    BROJA_PCA_DIM,
    TermsConfig,
    broja_frames,
    gapscore,
    lsmi_frames,
)
from dmil_ros.runtime.contract import no_evidence

if TYPE_CHECKING:
    from dmil_ros.pid import Discretiser

logger = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
SUMMARY_VERSION = 2  # 2: model level always refitted; node_* terms; model_pid soft


@dataclass(frozen=True)
class MergeOptions:
    """Dataset-level settings."""

    terms: TermsConfig = field(default_factory=TermsConfig)
    spikes: SpikeConfig = field(default_factory=SpikeConfig)
    n_clusters: int | None = None  # None: the CVX plug-in bias rule (suggest_n_clusters)
    seed: int = 0

    def __post_init__(self) -> None:
        k = self.n_clusters
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
            # one cluster per modality carries no information: every atom 0, "no shortcut"
            msg = (
                f'audit option n_clusters={k!r}: use None (the bias rule) or an integer >= 2 '
                '(fewer clusters leave the features no information: all PID atoms 0)'
            )
            raise AuditError(msg)


def concat(results: Sequence[BagResult]) -> tuple[dict[str, npt.NDArray[Any]], list[str]]:
    """All bags' arrays end to end, and the bag name of every frame."""
    names: list[str] = []
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in ARRAYS}
    dims = {'feat_camera': 0, 'feat_lidar': 0}
    for r in results:
        if r.frames:
            for k, d in list(dims.items()):
                dims[k] = max(d, r.arrays[k].shape[1])
    for r in results:
        if not r.frames:
            continue
        names.extend([r.name] * r.frames)
        for k in ARRAYS:
            a = r.arrays[k]
            if k in dims and a.shape[1] != dims[k]:  # a bag whose mask could not be profiled
                a = np.full((r.frames, dims[k]), np.nan, np.float32)
            parts[k].append(a)
    if not names:
        empty = BagResult.empty('', {})
        return dict(empty.arrays), []
    return {k: np.concatenate(v) for k, v in parts.items()}, names


def _mean_terms(terms: F64, rows: npt.NDArray[np.bool_]) -> dict[str, float] | None:
    sel = terms[rows]
    sel = sel[np.isfinite(sel).all(axis=1)]
    return as_atoms(sel.mean(axis=0)) if len(sel) else None


def _node_terms(arrays: dict[str, npt.NDArray[Any]]) -> tuple[F64, str | None, int]:
    """The per-frame terms the node publishes on ``~/interactions`` and its alarm reads: the
    model's ``pid_broja`` output, else its ``pid_lsmi``; which (None: neither); and how many
    rows had no evidence.

    A frame whose row is not finite stays NaN (it does not send the others to a refit); a
    ``pid_broja`` row at the table's floor (NO_EVIDENCE_BITS: the node publishes NaN for it)
    is NaN and counted.
    """
    n = len(arrays['stamp'])
    own_broja = arrays['self_broja'].astype(np.float64)  # (N, 4), NaN without
    broja_rows = np.asarray(np.isfinite(own_broja).all(axis=1))  # (N,)
    if broja_rows.any():
        floored = no_evidence(own_broja) & broja_rows  # (N,)
        keep = broja_rows & ~floored
        terms = np.where(keep[:, None], own_broja, np.nan)
        return terms, 'model output pid_broja', int(floored.sum())
    own_lsmi = arrays['self_lsmi'].astype(np.float64)  # (N, 4), NaN without
    lsmi_rows = np.asarray(np.isfinite(own_lsmi).all(axis=1))  # (N,)
    if lsmi_rows.any():
        return np.where(lsmi_rows[:, None], own_lsmi, np.nan), 'model output pid_lsmi', 0
    return np.full((n, 4), np.nan), None, 0


def _spike_families(
    spikes_mask: npt.NDArray[np.bool_],
    alerts: npt.NDArray[np.bool_],
    fam: npt.NDArray[np.int64],
    segment: npt.NDArray[np.int64],
    bag_index: npt.NDArray[np.int64],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, f in enumerate(FAMILIES):
        rows = fam == k
        out[f] = {
            'frames': int(rows.sum()),
            'flagged': int((spikes_mask & rows).sum()),
            'flagged_fraction': float(spikes_mask[rows].mean()) if rows.any() else None,
            'alert_fraction': float(alerts[rows].mean()) if rows.any() else None,
        }
    s_rows = fam == FAMILIES.index('S')
    # a segment is identified by (bag, segment id)
    seg_ids = np.where(s_rows, bag_index * 2**32 + segment, -1)
    covered, total = segment_coverage(spikes_mask, seg_ids)
    out['S_segments'] = {
        'covered': covered,
        'total': total,
        'fraction': covered / total if total else None,
    }
    return out


def merge(
    results: Sequence[BagResult], options: MergeOptions | None = None
) -> tuple[pa.Table, dict[str, Any]]:
    """The frame table and the summary (without model/timing info, which the runner adds).

    Runs with one BLAS/OpenMP thread: the dataset-level fits are many small problems (SVDs of
    a few thousand x 64, k-means, EM) for which busy-waiting thread pools cost more than they
    give on a shared machine (measured on the sample bag: merge 2.0 s -> 0.48 s at load ~5 on
    2 cores; benchmarks/bench_audit.py).
    """
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(1):
        return _merge(results, options or MergeOptions())


def _merge(results: Sequence[BagResult], opts: MergeOptions) -> tuple[pa.Table, dict[str, Any]]:
    # bags in name order (names are unique): k-means and the LSMI fits see the rows in one
    # order, so the dataset-level PID does not depend on the order the bags were named in
    results = sorted(results, key=lambda r: r.name)
    arrays, names = concat(results)
    n = len(names)
    bag_arr = np.array(names, dtype=object)
    probs = arrays['probs'].astype(np.float64)
    # the model's action; -1 where its scores are not finite (counted in the bag's errors)
    valid = np.isfinite(probs).all(axis=1)
    pred = np.where(valid, probs.argmax(axis=1), -1).astype(np.int64)
    label = arrays['label'].astype(np.int64)
    p_cam = arrays['p_camera'].astype(np.float64)
    p_lid = arrays['p_lidar'].astype(np.float64)
    p_joint = arrays['p_joint'].astype(np.float64)
    f_cam = arrays['feat_camera'].astype(np.float64)
    f_lid = arrays['feat_lidar'].astype(np.float64)
    usable = (
        valid
        & np.isfinite(p_joint).all(1)
        & np.isfinite(p_cam).all(1)
        & np.isfinite(p_lid).all(1)
        & np.isfinite(f_cam).all(1)
        & np.isfinite(f_lid).all(1)
    )
    # 1. per-frame LSMI terms refitted on the audit frames: model level (target: the model's
    #    action; its own predictions as discriminators) and data level (target: the label)
    lsmi_model = np.full((n, 4), np.nan)
    lsmi_data = np.full((n, 4), np.nan)
    deltas: dict[str, float] = {}
    sources = {'model': 'lsmi refit on the audit frames', 'data': 'lsmi refit on the audit frames'}
    fits = [('model', pred, probs, lsmi_model), ('data', label, p_joint, lsmi_data)]
    for which, target, joint, dest in fits:
        rows = np.flatnonzero(usable & (target >= 0))
        if rows.size:
            res = lsmi_frames(
                f_cam[rows],
                f_lid[rows],
                target[rows],
                p_cam[rows],
                p_lid[rows],
                joint[rows],
                opts.terms,
            )
            dest[rows] = res.terms
            if res.frames:
                deltas[which] = res.delta
        if which not in deltas:  # no fit: fewer than 2 classes with 2+ frames, or too few frames
            sources[which] = 'not fitted (too few frames or target classes)'
    # 2. dataset-level CVX PID (its k also serves the BROJA-local fits below)
    has_labels = bool((label >= 0).any())
    dataset_level: dict[str, tuple[dict[str, float] | None, dict[str, Any]]] = {}
    if n:
        # decision level (methods.md §5): the PID of the model's predictive distribution
        kmeans: dict[tuple[Any, ...], Discretiser] = {}  # k-means fits shared by the targets
        dataset_level['model'] = dataset_pid(
            f_cam, f_lid, pred, opts.n_clusters, opts.seed, probs=probs, clusters=kmeans
        )
        if has_labels:
            dataset_level['data'] = dataset_pid(
                f_cam, f_lid, label, opts.n_clusters, opts.seed, clusters=kmeans
            )
        if has_labels and bool(((pred >= 0) & (label < 0)).any()):
            # some bags unlabelled: model_pid covers frames data_pid does not (its own
            # clusters, its own scenes); the shortcut check compares data_pid with the model's
            # PID on the labelled frames, where both see the same frames
            on_labelled = np.where(label >= 0, pred, -1)
            dataset_level['model_labelled'] = dataset_pid(
                f_cam, f_lid, on_labelled, opts.n_clusters, opts.seed, probs=probs, clusters=kmeans
            )
    # 3. per-frame BROJA-local terms ('dual' variant) refitted on the audit frames: model level
    #    with the predictions, data level with the labels
    broja_model = np.full((n, 4), np.nan)
    broja_data = np.full((n, 4), np.nan)
    broja_sources: dict[str, str] = {}
    broja_fits = [('model', pred, broja_model), ('data', label, broja_data)]
    no_evidence_counts: dict[str, int] = {}  # frames whose terms are left out (NaN), per level
    node, node_source, node_no_evidence = _node_terms(arrays)
    broja_clusters: dict[str, int] = {}
    for which, target, dest in broja_fits:
        rows = np.flatnonzero(usable & (target >= 0))
        classes = int(np.unique(target[rows]).size)
        if classes < 2:
            continue
        k = dataset_level.get(which, (None, {}))[1].get('n_clusters') or default_clusters(
            int(rows.size), classes, opts.n_clusters
        )
        got = broja_frames(f_cam[rows], f_lid[rows], target[rows], k, opts.seed)
        if got.frames:
            dest[rows] = got.terms
            no_evidence_counts[which] = int(np.isnan(got.terms).any(axis=1).sum())
            broja_sources[which] = 'broja_local refit on the audit frames'
            broja_clusters[which] = k
    # the estimate the node's alarm reads drives the spikes (the node's own terms, else the
    # refitted LSMI); GapScore is decision level (methods.md §5): the model-level terms
    if node_source is not None:
        primary, spikes_from = node, f'node ({node_source})'
    else:
        primary, spikes_from = lsmi_model, f'lsmi_model ({sources["model"]})'
    gapscore_from = 'broja_model' if 'model' in broja_clusters else 'lsmi_model'
    decision = broja_model if gapscore_from == 'broja_model' else lsmi_model
    gap = (
        gapscore(decision, np.nan_to_num(p_cam, nan=0.25), np.nan_to_num(p_lid, nan=0.25), probs)
        if n
        else np.zeros((0, 4))
    )
    # 4. offline spikes per bag on the primary model-level synergy
    spikes: list[dict[str, Any]] = []
    in_spike = np.zeros(n, bool)
    bag_index = np.zeros(n, np.int64)
    fam = arrays['family'].astype(np.int64)
    for b, name in enumerate(dict.fromkeys(names)):
        rows = np.flatnonzero(bag_arr == name)
        bag_index[rows] = b
        found = find_spikes(primary[rows, 3], arrays['stamp'][rows], opts.spikes)
        in_spike[rows] = spike_mask(rows.size, found)
        for sp in found:
            d = sp.as_dict()
            seg_fam = fam[rows[sp.first : sp.last + 1]]
            present = [FAMILIES[int(k)] for k in np.unique(seg_fam[seg_fam >= 0])]
            d.update(bag=name, families=','.join(present))
            spikes.append(d)
    # 5. the frame table
    cols: dict[str, Any] = {
        'bag': names,
        'index': np.concatenate([np.arange(r.frames) for r in results if r.frames])
        if n
        else np.zeros(0, np.int32),
        'stamp': arrays['stamp'],
        'lidar_stamp': arrays['lidar_stamp'],
        'action': [ACTIONS[int(a)] if a >= 0 else '' for a in pred],
        'label': [ACTIONS[int(a)] if a >= 0 else '' for a in label],
        'alert': arrays['alert'].astype(bool),
        'spike': in_spike,
        'family': [FAMILIES[int(f)] if f >= 0 else '' for f in fam],
        'segment': arrays['segment'],
    }
    for k, c in enumerate(PROB_COLUMNS):
        cols[c] = probs[:, k]
    gates = arrays['gates'].astype(np.float64)
    for k, c in enumerate(GATE_COLUMNS):
        cols[c] = gates[:, k]
    terms = {
        'lsmi_model': lsmi_model,
        'lsmi_data': lsmi_data,
        'broja_model': broja_model,
        'broja_data': broja_data,
        'node': node,
    }
    for group, names_ in TERM_COLUMNS.items():
        for k, c in enumerate(names_):
            cols[c] = terms[group][:, k]
    for k, c in enumerate(GAP_COLUMNS):
        cols[c] = gap[:, k]
    table = build_table(cols)
    # 6. summary
    summary: dict[str, Any] = {
        'version': SUMMARY_VERSION,
        'units': 'bits',
        'components': list(COMPONENTS),
        'frames': {
            'total': n,
            'labelled': int((label >= 0).sum()),
            'with_ground_truth': int((arrays['segment'] >= 0).sum()),
            'with_family': int((fam >= 0).sum()),
            'alerts': int(arrays['alert'].sum()),
            'in_spikes': int(in_spike.sum()),
            'per_bag': {r.name: r.frames for r in results},
        },
        'data_pid': None,
        'model_pid': None,
        # the model's PID on data_pid's frames, when some bags are unlabelled (else None:
        # model_pid then covers the same frames)
        'model_labelled_pid': None,
        'pid_estimator': {
            'method': 'cvx',
            'n_clusters': opts.n_clusters,
            'features': 'model features (feat_camera/feat_lidar), else log unimodal predictions',
        },
        'lsmi_mean': {
            'model': _mean_terms(lsmi_model, np.ones(n, bool)),
            'data': _mean_terms(lsmi_data, np.ones(n, bool)),
            'delta': deltas,
            'source': sources,
            'config': asdict(opts.terms),
        },
        'broja_local_mean': {
            'model': _mean_terms(broja_model, np.ones(n, bool)),
            'data': _mean_terms(broja_data, np.ones(n, bool)),
            'variant': 'dual',
            'source': broja_sources,
            'n_clusters': broja_clusters,
            'no_evidence': no_evidence_counts,
            'pca_dim': BROJA_PCA_DIM,
            'note': 'means equal the BROJA atoms of the cluster histogram up to one shift '
            'E[g] <= 0 (dmil_ros.pid.broja_local)',
        },
        'node_mean': {
            'terms': _mean_terms(node, np.ones(n, bool)),
            'source': node_source or 'none: the model has no pid_broja or pid_lsmi output',
            'no_evidence': node_no_evidence,
            'note': "what the node publishes on ~/interactions: the model's heads, fitted at "
            "export on the training frames' recorded actions and read at the predicted action "
            '(the interactions the data holds for the chosen action; how the model itself '
            'uses its inputs is the model level)',
        },
        'spikes_from': spikes_from,
        'gapscore_from': gapscore_from,
        'per_action': {},
        'spikes': spikes,
        'spike_config': asdict(opts.spikes),
        'ground_truth': None,
    }
    warnings: list[str] = []
    for which, (atoms, meta) in dataset_level.items():
        summary[f'{which}_pid'], summary['pid_estimator'][which] = atoms, meta
        if 'warning' in meta:
            warnings.append(f'{which}_pid: {meta["warning"]}')
    summary['warnings'] = warnings
    for k, action in enumerate(ACTIONS):
        rows = pred == k
        labelled = rows & (label >= 0)
        summary['per_action'][action] = {
            'frames': int(rows.sum()),
            'label_frames': int((label == k).sum()),
            'agreement': float((label[labelled] == k).mean()) if labelled.any() else None,
            'model_lsmi': _mean_terms(lsmi_model, rows),
            'data_lsmi': _mean_terms(lsmi_data, label == k),
            'model_broja': _mean_terms(broja_model, rows),
            'data_broja': _mean_terms(broja_data, label == k),
            'node': _mean_terms(node, rows),
            'gates': _mean_terms(gates, rows),
            'alerts': int(arrays['alert'][rows].sum()),
        }
    gt = ground_truth(arrays)
    # checked again here: a finished result stored before the check is resumed as it is
    sidecars = {
        r.name: sidecar_atoms(r.info['sidecar'])[0]
        for r in results
        if isinstance(r.info.get('sidecar'), dict)
    }
    if sidecars:
        gt = gt or {}
        gt['sidecars'] = {
            name: {
                k: car.get(k)
                for k in ('mix', 'mix_pid', 'mix_pid_given_family', 'empirical')
                if k in car
            }
            for name, car in sidecars.items()
        }
        if 'pid' not in gt:  # no frame-level ground truth: a sidecar's, only when they agree
            pids = [car.get('mix_pid') for car in sidecars.values()]
            agree = all(p == pids[0] for p in pids)
            gt['pid'] = pids[0] if agree else None
            if not agree:
                gt['pid_note'] = (
                    "the bags' sidecars give different mix_pid values and no frame carries "
                    'ground truth: no single dataset-level truth (see sidecars)'
                )
    if gt is not None:
        gt['spikes'] = _spike_families(
            in_spike,
            arrays['alert'].astype(bool),
            fam,
            arrays['segment'].astype(np.int64),
            bag_index,
        )
        summary['ground_truth'] = gt
    return table, summary


__all__ = ['MergeOptions', 'concat', 'merge']
