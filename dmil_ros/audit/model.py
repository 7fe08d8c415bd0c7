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

"""The audited model: any ONNX model's action scores as probabilities, every output recorded.

:func:`load_model` loads a model once per process and thread for as long as its files (the
``.onnx`` and its external-data files, :func:`external_data`) are unchanged.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.onnx_external import WireError, external_locations

if TYPE_CHECKING:
    from dmil_ros.audit.bagaudit import BagOptions

F32 = npt.NDArray[np.float32]

_LOCATIONS: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def external_data(model: str) -> list[list[Any]]:
    """``[location, size, mtime, inode, ctime]`` of each ONNX external-data file the model
    references (``m.onnx.data``; ``[location, None]`` where it is missing): new weights
    deployed there leave the ``.onnx`` file byte for byte as it was, so its stat alone let a
    resume reuse the old model's results (review 22c, F4)."""
    path = Path(model)
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path.resolve()), *_stamp(st))  # the locations are in the .onnx: parsed once
    locations = _LOCATIONS.get(key)
    if locations is None:
        try:
            locations = tuple(external_locations(path))
        except (WireError, OSError):
            locations = ()  # loading the model refuses it, naming the problem
        if len(_LOCATIONS) >= 8:
            _LOCATIONS.clear()
        _LOCATIONS[key] = locations
    out: list[list[Any]] = []
    for location in locations:
        try:
            out.append([location, *_stamp((path.parent / location).stat())])
        except OSError:  # noqa: PERF203 - a missing file is an entry, not an error
            out.append([location, None])
    return out


SCORE_OUTPUTS = ('probs', 'probs_camera', 'probs_lidar', 'probs_joint')
"""Outputs the audit reads as action probabilities (raw scores get a softmax)."""


def is_distribution(values: F32) -> bool:
    """True when every finite row of ``values`` (B, K) is a probability vector (1e-3)."""
    rows = values[np.isfinite(values).all(axis=1)]  # (B', K)
    return bool(
        (rows >= 0).all() and (rows <= 1).all() and np.allclose(rows.sum(axis=1), 1, atol=1e-3)
    )


def softmax(values: F32) -> F32:
    """Row-wise softmax of raw action scores (B, K); a non-finite row stays non-finite."""
    shifted = values - values.max(axis=1, keepdims=True)  # (B, K)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float32)


class RecordingModel(FusionModel):
    """A FusionModel fetching every output and remembering the last batch's outputs.

    Any model returning action scores can be audited (issue #8): an output of
    :data:`SCORE_OUTPUTS` whose rows are not probability vectors (logits) is turned into
    probabilities by a softmax, from then on for the whole bag; ``softmaxed`` names them.
    """

    last: dict[str, F32]
    softmaxed: set[str]

    def run(self, image: F32, lidar: F32) -> dict[str, F32]:
        out = self.as_probabilities(super().run(image, lidar))
        self.last = out
        return out

    def unrecorded_probs(self, image: F32, lidar: F32) -> F32:
        """``probs`` of a side run (masked inputs), leaving the recorded batch as it is."""
        return self.as_probabilities(FusionModel.run(self, image, lidar))['probs']

    def reset(self) -> None:
        """Forget the last batch and the softmax decisions (a new bag starts)."""
        self.last = {}
        self.softmaxed = set()

    def as_probabilities(self, out: dict[str, F32]) -> dict[str, F32]:
        for name in SCORE_OUTPUTS:
            if name in out and (name in self.softmaxed or not is_distribution(out[name])):
                self.softmaxed.add(name)
                out[name] = softmax(out[name])
        return out


_MODELS: dict[tuple[Any, ...], RecordingModel] = {}


def load_model(options: BagOptions) -> RecordingModel:
    """The model for ``options``, loaded once per process and thread for as long as its file
    is unchanged: a worker auditing many bags would otherwise spend ~0.1 s per bag creating
    the same ONNX Runtime session (benchmarks/bench_audit.py)."""
    path = Path(options.model)
    stat = path.stat() if path.is_file() else None
    key: tuple[Any, ...] | None = None
    if stat is not None:
        # one per thread too: a model records its last outputs
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        key += (stat.st_ctime_ns, options.threads, threading.get_ident())
        key += (json.dumps(external_data(options.model)),)
        cached = _MODELS.get(key)
        if cached is not None:
            cached.reset()
            return cached
    model = RecordingModel(options.model, provider='cpu', threads=options.threads, adapt=True)
    model.outputs = model.info.outputs  # every output, not only the node's
    model.reset()
    if key is not None:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        _MODELS[key] = model
    return model


__all__ = [
    'SCORE_OUTPUTS',
    'RecordingModel',
    'external_data',
    'is_distribution',
    'load_model',
    'softmax',
]
