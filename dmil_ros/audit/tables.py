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

"""The per-frame audit table: its columns, and writers for Parquet (pyarrow) and CSV.

One row per fused frame (camera image + paired cloud), in bag order then time order. Columns:

=====================  ==================================================================
``bag``, ``index``     bag name, frame index within the bag
``stamp``              camera header stamp, ns since the epoch (int64)
``lidar_stamp``        header stamp of the LiDAR sweep paired with the image (int64 ns; -1
                       would mean none, but degraded frames are counted, not audited)
``action``             the model's action (argmax of ``probs``), '' where they are not finite
``prob_<action>``      the model's action probabilities
``gate_<component>``   DMIL gates (NaN when the model has none)
``lsmi_model_<c>``     model level (how the model uses its inputs): LSMI terms (bits) fitted on
                       the audit frames with the model's prediction as target and its own
                       predictions as discriminators
``lsmi_data_<c>``      LSMI terms (bits) with the recorded action as target (NaN: no label)
``broja_model_<c>``    model level: BROJA-consistent local terms, 'dual' variant (bits), fitted
                       on the audit frames' features with the model's predictions as target
``broja_data_<c>``     BROJA-consistent local terms, 'dual' variant (bits), for the recorded
                       action, fitted on the audit frames' features (NaN: no label)
``node_<c>``           what the node publishes on ``~/interactions`` and its synergy alarm
                       reads: the model's ``pid_broja`` output, else its ``pid_lsmi`` (heads
                       fitted at export on the training frames' recorded actions, read at the
                       predicted action: the data's interactions for the chosen action); NaN
                       for a model without them and where ``pid_broja`` has no evidence
``label``              recorded (expert) action, '' when the bag has none
``alert``              the runtime spike monitor's alert flag (the node's own monitor)
``spike``              inside an offline synergy spike (see :mod:`dmil_ros.audit.spikes`) of the
                       estimate the node's alarm reads (``summary['spikes_from']``)
``family``             simulator scene family ('' without ground truth, or when the camera image
                       and the LiDAR sweep come from two scene segments), ``segment`` the
                       camera frame's segment id
``synergy_ratio``,     GapScore ingredients (methods §5) and ``gapscore`` itself
``shortcut_score``,
``fusion_potential``
=====================  ==================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.atomic import atomic_write
from dmil_ros.audit.errors import AuditInputError

PROB_COLUMNS = tuple(f'prob_{a}' for a in ACTIONS)
GATE_COLUMNS = tuple(f'gate_{c}' for c in COMPONENTS)
LSMI_MODEL_COLUMNS = tuple(f'lsmi_model_{c}' for c in COMPONENTS)
LSMI_DATA_COLUMNS = tuple(f'lsmi_data_{c}' for c in COMPONENTS)
BROJA_MODEL_COLUMNS = tuple(f'broja_model_{c}' for c in COMPONENTS)
BROJA_DATA_COLUMNS = tuple(f'broja_data_{c}' for c in COMPONENTS)
NODE_COLUMNS = tuple(f'node_{c}' for c in COMPONENTS)
TERM_COLUMNS = {
    'lsmi_model': LSMI_MODEL_COLUMNS,
    'lsmi_data': LSMI_DATA_COLUMNS,
    'broja_model': BROJA_MODEL_COLUMNS,
    'broja_data': BROJA_DATA_COLUMNS,
    'node': NODE_COLUMNS,
}
GAP_COLUMNS = ('synergy_ratio', 'shortcut_score', 'fusion_potential', 'gapscore')

SCHEMA = pa.schema(
    [
        ('bag', pa.string()),
        ('index', pa.int32()),
        ('stamp', pa.int64()),
        ('lidar_stamp', pa.int64()),
        ('action', pa.string()),
        *[(c, pa.float32()) for c in PROB_COLUMNS],
        *[(c, pa.float32()) for c in GATE_COLUMNS],
        *[(c, pa.float32()) for group in TERM_COLUMNS.values() for c in group],
        ('label', pa.string()),
        ('alert', pa.bool_()),
        ('spike', pa.bool_()),
        ('family', pa.string()),
        ('segment', pa.int32()),
        *[(c, pa.float32()) for c in GAP_COLUMNS],
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)


def build_table(columns: dict[str, Any]) -> pa.Table:
    """A table with exactly :data:`SCHEMA`; every column must be given, all the same length."""
    missing = [c for c in COLUMNS if c not in columns]
    extra = [c for c in columns if c not in COLUMNS]
    if missing or extra:
        msg = f'frame table: missing columns {missing}, unknown columns {extra}'
        raise AuditInputError(msg)
    lengths = {c: len(columns[c]) for c in COLUMNS}
    if len(set(lengths.values())) > 1:
        msg = f'frame table: columns differ in length {lengths}'
        raise AuditInputError(msg)
    arrays = [pa.array(columns[f.name], type=f.type, from_pandas=True) for f in SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def write_table(table: pa.Table, out_dir: Path, stem: str = 'frames') -> tuple[Path, Path]:
    """Write ``<stem>.parquet`` and ``<stem>.csv`` atomically (temp file then rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / f'{stem}.parquet'
    csv = out_dir / f'{stem}.csv'
    atomic_write(parquet, lambda f: pq.write_table(table, f, compression='zstd'))
    atomic_write(csv, lambda f: pacsv.write_csv(table, f))
    return parquet, csv


def read_table(path: Path) -> pa.Table:
    """Read a frame table written by :func:`write_table` (schema checked)."""
    table = pq.read_table(path)
    if table.schema.names != list(COLUMNS):
        msg = f'{path}: not an audit frame table (columns {table.schema.names})'
        raise AuditInputError(msg)
    return table


def column(table: pa.Table, name: str) -> npt.NDArray[Any]:
    """A column as numpy (nulls become NaN for floats)."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def matrix(table: pa.Table, names: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """Several float columns stacked: ``(N, len(names))`` float64."""
    if table.num_rows == 0:
        return np.zeros((0, len(names)), np.float64)
    return np.stack([column(table, n).astype(np.float64) for n in names], axis=1)


__all__ = [
    'BROJA_DATA_COLUMNS',
    'BROJA_MODEL_COLUMNS',
    'COLUMNS',
    'GAP_COLUMNS',
    'GATE_COLUMNS',
    'LSMI_DATA_COLUMNS',
    'LSMI_MODEL_COLUMNS',
    'PROB_COLUMNS',
    'SCHEMA',
    'TERM_COLUMNS',
    'build_table',
    'column',
    'empty_table',
    'matrix',
    'read_table',
    'write_table',
]
