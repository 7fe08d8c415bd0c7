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

"""Scalars typed as rcl types them: against rcl's ``get_value`` ported onto the C library's own
``strtol`` / ``strtod`` (ctypes), and a catalogue of what a robot's parameters file holds."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmil_ros.runtime import params
from dmil_ros.runtime.errors import RuntimeConfigError
from dmil_ros.runtime.rcl_yaml import load_tree, scalar

_LIBC_NAME = ctypes.util.find_library('c')
libc = ctypes.CDLL(_LIBC_NAME, use_errno=True) if _LIBC_NAME else None
needs_libc = pytest.mark.skipif(libc is None, reason='no C library to compare with')


def rcl_get_value(text: str) -> bool | int | float | str:
    """rcl's ``get_value`` (``rcl_yaml_param_parser/src/parse.c``) for a plain scalar, line by
    line, with the C library's ``strtol`` and ``strtod`` and their ``errno``."""
    assert libc is not None
    true = ('Y', 'y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON')
    false = ('N', 'n', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF')
    if text in true:
        return True
    if text in false:
        return False
    raw = text.encode()
    buf = ctypes.create_string_buffer(raw)
    end = ctypes.c_char_p()
    libc.strtol.restype = ctypes.c_long
    libc.strtol.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    ctypes.set_errno(0)
    ival = libc.strtol(buf, ctypes.byref(end), 0)
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)  # type: ignore[operator]
    if ctypes.get_errno() == 0 and consumed != 0 and raw and consumed == len(raw):
        return int(ival)
    libc.strtod.restype = ctypes.c_double
    libc.strtod.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    ctypes.set_errno(0)
    special = (
        '.nan', '.NaN', '.NAN', '.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF',
        '-.inf', '-.Inf', '-.INF',
    )  # fmt: skip
    start = ctypes.addressof(buf)
    if text in special:
        offset = next(i for i, c in enumerate(text) if c.isalpha())
        start += offset
    dval = libc.strtod(ctypes.c_char_p(start), ctypes.byref(end))
    if text in special and text.startswith('-'):
        dval = -dval
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)  # type: ignore[operator]
    moved = ctypes.cast(end, ctypes.c_void_p).value != start
    if ctypes.get_errno() == 0 and moved and raw and consumed == len(raw):
        return float(dval)
    return text


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


CATALOGUE = [
    ('true', True), ('yes', True), ('On', True), ('y', True), ('NO', False), ('off', False),
    ('42', 42), ('-7', -7), ('010', 8), ('0x1F', 31), ('08', 8.0), ('0.05', 0.05),
    ('1e3', 1000.0), ('-.inf', -math.inf), ('.NaN', math.nan), ('inf', math.inf),
    ('1e999', '1e999'), ('9223372036854775808', 9.223372036854776e18), ('null', 'null'),
    ('~', '~'), ('/camera/image_raw', '/camera/image_raw'), ('1_000', '1_000'),
    ('0x1p3', 8.0), ('.5', 0.5), ('Yes please', 'Yes please'), ('.Nan', '.Nan'),
]  # fmt: skip


@pytest.mark.parametrize(('text', 'expected'), CATALOGUE)
def test_catalogue(text: str, expected: object) -> None:
    assert same(scalar(text), expected), (text, scalar(text))


@needs_libc
@pytest.mark.parametrize('text', [t for t, _ in CATALOGUE])
def test_catalogue_against_the_c_library(text: str) -> None:
    assert same(scalar(text), rcl_get_value(text)), text


_PIECES = st.sampled_from(
    ['0', '1', '7', '8', '9', 'x', 'X', 'e', 'E', '.', '+', '-', 'a', 'f', 'p', 'inf', 'nan',
     'y', 'n', 'o', ' ', '_']
)  # fmt: skip


@needs_libc
@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=8).map(''.join))
def test_numbers_typed_as_the_c_library_reads_them(text: str) -> None:
    """Random number-like text: the same type and value as rcl's ``get_value`` on libc."""
    assert same(scalar(text), rcl_get_value(text)), text


def test_quoted_scalars_stay_strings_and_keys_keep_their_text(tmp_path: Path) -> None:
    tree = load_tree('a:\n  yes: \'yes\'\n  b: "0.5"\n  c: yes\n  d: [1, 2.0]\n', 'f.yaml')
    assert tree == {'a': {'yes': 'yes', 'b': '0.5', 'c': True, 'd': [1, 2.0]}}


def test_an_empty_value_names_its_line() -> None:
    with pytest.raises(RuntimeConfigError, match=r"'f.yaml': no value at line 3"):
        load_tree('a:\n  b: 1\n  c:\n', 'f.yaml')


def test_a_yaml_syntax_error_names_the_file() -> None:
    with pytest.raises(RuntimeConfigError, match=r"parameters file 'f.yaml'"):
        load_tree('a: [1, 2\n', 'f.yaml')


def _file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / 'p.yaml'
    path.write_text(body, encoding='utf-8')
    return path


def test_a_robots_parameters_file_reaches_the_replay(tmp_path: Path) -> None:
    """rclpy's own parameters, set for every node, are left out; rcl's booleans are read."""
    path = _file(
        tmp_path,
        '/**:\n  ros__parameters:\n    use_sim_time: true\n'
        '    qos_overrides./tf.publisher.depth: 10\n'
        '/**/fusion_node:\n  ros__parameters:\n    publish_cmd_vel: yes\n'
        '    start_type_description_service: false\n',
    )
    settings_ = params.build(params.load_yaml(path))
    assert settings_.twists is not None  # publish_cmd_vel: yes


def test_a_misspelt_name_is_still_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, '/**/fusion_node:\n  ros__parameters:\n    slopp: 0.05\n')
    with pytest.raises(RuntimeConfigError, match="parameter 'slopp' unknown"):
        params.build(params.load_yaml(path))
