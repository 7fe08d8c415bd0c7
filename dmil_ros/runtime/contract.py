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

"""The ONNX model contract: what a model must take and give for the node and the audit.

Inputs ``image`` float32 ``(B, 3, H, W)`` and ``lidar`` float32 ``(B, 2, beams, bins)`` as
:mod:`dmil_ros.runtime.preprocess` makes them; output ``probs`` ``(B, 4)`` always, and optionally
``gates`` ``(B, 4)``, ``sub_probs`` ``(B, 4, 4)``, ``probs_camera`` / ``probs_lidar`` /
``probs_joint`` ``(B, 4)``, ``pid_lsmi`` / ``pid_broja`` ``(B, 4)`` (r, u_camera, u_lidar, s in
bits), ``feat_camera`` / ``feat_lidar`` ``(B, D)``. Metadata ``dmil_ros.labels`` /
``dmil_ros.components`` (JSON lists that must equal ACTIONS / COMPONENTS when present),
``dmil_ros.preprocess`` (the PreprocessSpec the model was trained with; defaults are assumed for a
foreign model without it, provided the input shapes agree), ``dmil_ros.kind``,
``dmil_ros.version``. Outputs a model lacks are reported as unavailable, never invented. A model
exported with a fixed batch size instead of a batch axis (``torch.onnx.export`` without dynamic
axes) is run in chunks of that size, the last one padded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dmil_ros.actions import ACTIONS, COMPONENTS
from dmil_ros.errors import ConfigError
from dmil_ros.runtime.errors import ModelError
from dmil_ros.runtime.preprocess import PreprocessSpec

logger = logging.getLogger(__name__)

N = len(ACTIONS)
# output name -> expected shape after the batch axis (None = any size)
KNOWN_OUTPUTS: Final[dict[str, tuple[int | None, ...]]] = {
    'probs': (N,),
    'gates': (len(COMPONENTS),),
    'sub_probs': (len(COMPONENTS), N),
    'probs_camera': (N,),
    'probs_lidar': (N,),
    'probs_joint': (N,),
    'pid_lsmi': (4,),
    'pid_broja': (4,),
    'feat_camera': (None,),
    'feat_lidar': (None,),
}
RUNTIME_OUTPUTS: Final = ('probs', 'gates', 'pid_lsmi', 'pid_broja')
"""Outputs the node needs per frame (features and heads are for audits)."""
NO_EVIDENCE_BITS: Final = 30.0  # -FLOOR / 2 of dmil_ros.pid.broja_local (that import loads scipy)
"""A ``pid_broja`` row with a term this large (half the table's 60-bit log floor) looked up a
floored table entry: the fitting frames never showed the predicted action with the frame's camera
cluster, its LiDAR cluster or the pair. Such a row's terms are floors (r or a unique term near
∓60 bits, or s near -60), not estimates; the node publishes NaN for it and the audit leaves it out
of its means. Entries the frames did show stay far below: on 1,000 held-out simulator frames the
shipped model's rows peak at 2.9 bits, its 5 floored rows (two-scene pairs) at 57-60 bits."""


def no_evidence(pid_broja: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """``(B,)`` True for the ``pid_broja`` rows ``(B, 4)`` with a term of at least
    :data:`NO_EVIDENCE_BITS` (NaN rows are not floored: False)."""
    rows = np.abs(np.asarray(pid_broja))  # (B, 4)
    return np.asarray(rows.max(axis=1, initial=0.0) >= NO_EVIDENCE_BITS)


@dataclass(frozen=True)
class ModelInfo:
    """What a checked model offers."""

    path: str
    spec: PreprocessSpec
    outputs: tuple[str, ...]
    kind: str
    version: str
    metadata: dict[str, str]
    fixed_batch: int | None = None  # the batch size a model exported without a batch axis takes
    graph_names: dict[str, str] = field(default_factory=dict)  # contract name -> graph name
    ignored_outputs: tuple[str, ...] = ()  # graph outputs outside the contract (adapted only)

    def graph_name(self, name: str) -> str:
        """The graph's name for contract input or output ``name``."""
        return self.graph_names.get(name, name)


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in shape)


def _check_list(path: str, meta: dict[str, str], key: str, want: tuple[str, ...]) -> None:
    if key not in meta:
        return
    try:
        got = json.loads(meta[key])
    except json.JSONDecodeError as exc:
        msg = f'model {path!r}: metadata {key!r} is not JSON ({exc})'
        raise ModelError(msg) from exc
    if not isinstance(got, list) or got != list(want):
        msg = f'model {path!r}: metadata {key!r} is {got!r}, this package expects {list(want)}'
        raise ModelError(msg)


def check_contract(
    path: str, inputs: Any, outputs: Any, meta: dict[str, str], *, adapt: bool = False
) -> ModelInfo:
    """Validate a session's inputs, outputs and metadata; return what the model offers.

    ``inputs`` / ``outputs`` are ONNX Runtime ``NodeArg`` lists (``.name``, ``.type``,
    ``.shape``). Raises :class:`ModelError` naming the file and the mismatch.

    ``adapt`` (the audit: any model taking the image and the points and returning action
    scores): inputs named otherwise are told apart by their per-sample shapes, an output of
    shape (B, 4) stands for ``probs`` when the model has no ``probs`` and no other unknown
    output of that shape, and outputs outside the contract are ignored (``ignored_outputs``).
    The node keeps the strict contract: a model it cannot read fully is refused.
    """
    # 1. the preprocessing the model was trained with
    if 'dmil_ros.preprocess' in meta:
        try:
            spec = PreprocessSpec.from_json(meta['dmil_ros.preprocess'])
        except ConfigError as exc:
            msg = f'model {path!r}: metadata dmil_ros.preprocess: {exc}'
            raise ModelError(msg) from exc
    else:
        spec = _spec_from_inputs(path, inputs)
    _check_list(path, meta, 'dmil_ros.labels', ACTIONS)
    _check_list(path, meta, 'dmil_ros.components', COMPONENTS)
    # 2. inputs: names (or, adapted, shapes), element type, per-sample shape
    expect = {'image': spec.image_shape, 'lidar': spec.lidar_shape}
    by_name = {i.name: i for i in inputs}
    names_in = {name: name for name in expect}
    if set(by_name) != set(expect):
        if not adapt:
            msg = (
                f'model {path!r}: inputs are {sorted(by_name)}, the contract needs image and lidar'
            )
            raise ModelError(msg)
        names_in = _inputs_by_shape(path, list(inputs), expect)
    for name, want in expect.items():
        arg = by_name[names_in[name]]
        if arg.type != 'tensor(float)':
            msg = f'model {path!r}: input {arg.name!r} is {arg.type}, expected tensor(float)'
            raise ModelError(msg)
        if not _fits(arg.shape, want):
            msg = (
                f'model {path!r}: input {arg.name!r} has shape {list(arg.shape)}, the '
                f'preprocessing spec makes (B, {", ".join(map(str, want))})'
            )
            raise ModelError(msg)
    # 3. outputs: probs is required; every output must be a contract output of its shape
    #    (adapted: the one unknown (B, 4) output stands for probs, other unknown ones are
    #    ignored)
    contract_of = {a.name: a.name for a in outputs if a.name in KNOWN_OUTPUTS}  # graph -> ours
    unknown = [a for a in outputs if a.name not in KNOWN_OUTPUTS]
    if unknown and not adapt:
        msg = (
            f'model {path!r}: outputs {[a.name for a in unknown]} are not in the model contract '
            f'(known: {list(KNOWN_OUTPUTS)})'
        )
        raise ModelError(msg)
    scores = [a.name for a in unknown if _fits(a.shape, KNOWN_OUTPUTS['probs'])]
    if 'probs' not in contract_of and len(scores) == 1:
        contract_of[scores[0]] = 'probs'
    ignored = [a.name for a in unknown if a.name not in contract_of]
    outputs = [a for a in outputs if a.name in contract_of]
    for arg in outputs:
        if arg.type != 'tensor(float)':
            msg = f'model {path!r}: output {arg.name!r} is {arg.type}, expected tensor(float)'
            raise ModelError(msg)
        want_tail = KNOWN_OUTPUTS[contract_of[arg.name]]
        if not _fits(arg.shape, want_tail):
            want_txt = ', '.join('D' if w is None else str(w) for w in want_tail)
            msg = (
                f'model {path!r}: output {arg.name!r} has shape {list(arg.shape)}, '
                f'the contract says (B, {want_txt})'
            )
            raise ModelError(msg)
    names = [contract_of[arg.name] for arg in outputs]
    if 'probs' not in names:
        graph = [arg.name for arg in outputs]
        msg = f'model {path!r}: no output named probs (outputs: {graph})'
        if adapt:
            msg += '; and not exactly one other output of shape (B, 4) to take as the scores'
        raise ModelError(msg)
    # 4. the batch axis: symbolic, or one fixed size (an export without a dynamic batch axis),
    #    which the model then runs in chunks of
    fixed = {
        f'{kind} {arg.name!r}': dims[0]
        for kind, args in (('input', inputs), ('output', outputs))
        for arg in args
        if (dims := _dims(arg.shape)) and dims[0] is not None
    }
    if len(set(fixed.values())) > 1 or any(size < 1 for size in fixed.values()):
        msg = f'model {path!r}: fixed batch sizes disagree ({fixed}); export one batch axis'
        raise ModelError(msg)
    return ModelInfo(
        path=path,
        spec=spec,
        outputs=tuple(names),
        kind=meta.get('dmil_ros.kind', 'foreign'),
        version=meta.get('dmil_ros.version', ''),
        metadata=dict(meta),
        fixed_batch=next(iter(fixed.values()), None),
        graph_names={
            **{k: v for k, v in names_in.items() if k != v},
            **{k: v for v, k in contract_of.items() if k != v},
        },
        ignored_outputs=tuple(ignored),
    )


def _fits(shape: Any, want: tuple[int | None, ...]) -> bool:
    """A (B, *want) shape, unknown dims matching anything."""
    dims = _dims(shape)
    if len(dims) != 1 + len(want):
        return False
    return all(d is None or w is None or d == w for d, w in zip(dims[1:], want, strict=True))


def _spec_from_inputs(path: str, inputs: Any) -> PreprocessSpec:
    """The default preprocessing at the sizes of a model without ``dmil_ros.preprocess``:
    a static ``(B, 3, H, W)`` input sets the image size, a static ``(B, 2, beams, bins)`` one
    the range image's (an ONNX model from elsewhere, trained at other sizes, still runs)."""
    sizes: dict[str, Any] = {}
    for arg in inputs:
        dims = _dims(arg.shape)[1:]
        if len(dims) != 3 or None in dims or min(d or 0 for d in dims) <= 0:
            continue
        if dims[0] == 3:
            sizes.update(image_height=dims[1], image_width=dims[2])
        elif dims[0] == 2:
            sizes.update(beams=dims[1], azimuth_bins=dims[2])
    try:
        spec = replace(PreprocessSpec(), **sizes)
    except ConfigError as exc:
        msg = f'model {path!r}: input sizes {sizes}: {exc}'
        raise ModelError(msg) from exc
    logger.warning(
        'model %r has no dmil_ros.preprocess metadata: default preprocessing at %s',
        path,
        ', '.join(f'{k} {v}' for k, v in sizes.items()) or 'the default sizes',
    )
    return spec


def _inputs_by_shape(
    path: str, inputs: list[Any], expect: dict[str, tuple[int, int, int]]
) -> dict[str, str]:
    """Contract input name -> graph input name, decided by the per-sample shapes."""
    if len(inputs) != len(expect):
        msg = (
            f'model {path!r}: inputs are {[i.name for i in inputs]}; an audited model takes '
            'two, the image and the LiDAR range image'
        )
        raise ModelError(msg)
    first, second = inputs
    fits = [
        {'image': a.name, 'lidar': b.name}
        for a, b in ((first, second), (second, first))
        if _fits(a.shape, expect['image']) and _fits(b.shape, expect['lidar'])
    ]
    if len(fits) != 1:
        want = ', '.join(f'{k} (B, {", ".join(map(str, v))})' for k, v in expect.items())
        got = ', '.join(f'{i.name!r} {list(i.shape)}' for i in inputs)
        how = 'both ways' if fits else 'neither way'
        msg = f'model {path!r}: inputs {got} match {want} {how}; name them image and lidar'
        raise ModelError(msg)
    logger.info('model %r: inputs taken by shape: %s', path, fits[0])
    return fits[0]
