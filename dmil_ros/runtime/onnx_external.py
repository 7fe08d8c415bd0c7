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

"""The external-data locations an ONNX file references, read without the ``onnx`` package.

``onnx`` is not a runtime dependency (the node needs only ONNX Runtime), and ONNX Runtime's own
checks on external data differ between versions. This walks the protobuf wire format along the
schema paths where a ``TensorProto`` can sit (onnx/onnx.proto3):

* ``ModelProto.graph`` (7), ``ModelProto.functions`` (25) -> ``FunctionProto.node`` (7);
* ``GraphProto``: ``node`` (1), ``initializer`` (5), ``sparse_initializer`` (15);
* ``NodeProto.attribute`` (5) -> ``AttributeProto``: ``t`` (5), ``g`` (6), ``tensors`` (10),
  ``graphs`` (11), ``sparse_tensor`` (22), ``sparse_tensors`` (23);
* ``SparseTensorProto``: ``values`` (1), ``indices`` (2);
* ``TensorProto.external_data`` (13) -> ``StringStringEntryProto`` key (1) / value (2).

Every ``location`` value found is returned; tensor payloads (``raw_data``) are skipped unread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

MAX_DEPTH = 64


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            msg = 'truncated varint'
            raise WireError(msg)
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, payload of length-delimited fields, else None) in wire order."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, i = _varint(buf, i)
            yield number, None
        elif wire == 1:
            i += 8
            yield number, None
        elif wire == 5:
            i += 4
            yield number, None
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > n:
                msg = 'length-delimited field overruns its message'
                raise WireError(msg)
            yield number, buf[i : i + size]
            i += size
        else:
            msg = f'wire type {wire} not supported'
            raise WireError(msg)
    if i != n:
        msg = 'truncated message'
        raise WireError(msg)


# message kind -> {field number: message kind of that (length-delimited) field}
_SCHEMA: dict[str, dict[int, str]] = {
    'model': {7: 'graph', 25: 'function'},
    'function': {7: 'node'},
    'graph': {1: 'node', 5: 'tensor', 15: 'sparse'},
    'node': {5: 'attribute'},
    'attribute': {5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse'},
    'sparse': {1: 'tensor', 2: 'tensor'},
    'tensor': {13: 'entry'},
}


def _walk(buf: memoryview, kind: str, depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        msg = f'messages nested deeper than {MAX_DEPTH}'
        raise WireError(msg)
    if kind == 'entry':
        key = value = b''
        for number, payload in _fields(buf):
            if payload is not None and number == 1:
                key = payload.tobytes()
            elif payload is not None and number == 2:
                value = payload.tobytes()
        if key == b'location':
            out.append(value.decode('utf-8', 'replace'))
        return
    children = _SCHEMA[kind]
    for number, payload in _fields(buf):
        child = children.get(number)
        if child is not None and payload is not None:
            _walk(payload, child, depth + 1, out)


def external_locations(path: str | Path) -> list[str]:
    """Every external-data ``location`` in the ONNX file at ``path`` (raises WireError)."""
    data = Path(path).read_bytes()
    if b'location' not in data:
        # every reference stores the key 'location' verbatim (protobuf strings are raw bytes):
        # without it there is nothing to find, and the walk (~30 ms for the shipped model) is
        # skipped; a malformed file is then ONNX Runtime's to refuse
        return []
    out: list[str] = []
    _walk(memoryview(data), 'model', 0, out)
    return out


def outside_locations(path: str | Path) -> list[str]:
    """The external-data locations that resolve (symlinks followed) outside the model's folder.

    Absolute locations are outside by definition (the ONNX spec: paths relative to the model).
    """
    root = Path(path).resolve().parent
    bad = []
    for location in external_locations(path):
        rel = Path(location)
        if rel.is_absolute() or not (root / rel).resolve().is_relative_to(root):
            bad.append(location)
    return bad
