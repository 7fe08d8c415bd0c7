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

"""A ROS 2 parameters file read as rcl reads it, so the replay and the node see the same values.

rcl (``rcl_yaml_param_parser``, ``parse.c: get_value``) does not follow YAML 1.2's scalar
rules: it types each scalar from its text and quoting alone, in this order,

1. quoted (``'...'`` or ``"..."``): a string;
2. ``y Y yes Yes YES true True TRUE on On ON``: true; the same with n / no / false / off: false;
3. the whole text read by ``strtol(text, 0)``: an int64 (so ``010`` is 8, octal, and ``0x1F``
   is 31); out of range, it goes on to the next rule;
4. the whole text read by ``strtod``, or ``.nan`` / ``.inf`` / ``-.inf`` in the three spellings
   rcl lists: a double (``1e3``, ``inf``, ``nan``, hex floats; ``1e999`` overflows and is a
   string, as rcl's errno check makes it);
5. anything else: a string (``null`` and ``~`` included); an empty plain scalar is an error.

YAML tags are ignored, as rcl ignores them. ruamel composes the tree (so syntax errors are
YAML's), and :func:`scalar` types each plain scalar.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from dmil_ros.runtime.errors import RuntimeConfigError

_TRUE: Final = frozenset(('Y', 'y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'))
_FALSE: Final = frozenset(
    ('N', 'n', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF')
)
_YAML_NAN_INF: Final = {
    **dict.fromkeys(('.nan', '.NaN', '.NAN'), math.nan),
    **dict.fromkeys(('.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'), math.inf),
    **dict.fromkeys(('-.inf', '-.Inf', '-.INF'), -math.inf),
}
_SPACE = r'[ \t\n\v\f\r]*'  # C isspace(), which strtol and strtod skip before the number
_INT: Final = re.compile(_SPACE + r'([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)')
_DECIMAL: Final = re.compile(
    _SPACE + r'[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)',
    re.IGNORECASE,
)
_HEX_FLOAT: Final = re.compile(
    _SPACE + r'[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?'
)
_INT64: Final = (-(2**63), 2**63 - 1)


def scalar(text: str) -> bool | int | float | str:
    """A plain (unquoted) scalar typed by rcl's rules 2-5 (module docstring)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if m := _INT.fullmatch(text):
        sign, digits = m.groups()
        base = 16 if digits[:2] in ('0x', '0X') else 8 if digits[0] == '0' else 10
        value = int(digits, base) * (-1 if sign == '-' else 1)
        if _INT64[0] <= value <= _INT64[1]:  # strtol's ERANGE: on to strtod
            return value
    if text in _YAML_NAN_INF:
        return _YAML_NAN_INF[text]
    if _DECIMAL.fullmatch(text) or _HEX_FLOAT.fullmatch(text):
        number = text.strip(' \t\n\v\f\r')
        value_f = float.fromhex(number) if 'x' in number.lower() else float(number)
        if math.isinf(value_f) and 'inf' not in number.lower():  # strtod's ERANGE: a string
            return text
        return value_f
    return text


def load_tree(text: str, source: str) -> Any:
    """The YAML document in ``text`` as dicts, lists and rcl-typed scalars.

    ``source`` names the file in errors (:class:`RuntimeConfigError`).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    try:
        root = YAML(typ='safe').compose(text)
    except YAMLError as exc:
        msg = f'parameters file {source!r}: {exc}'
        raise RuntimeConfigError(msg) from exc

    def build(node: Any) -> Any:
        if isinstance(node, MappingNode):
            # keys are names: their text as written (rcl reads no type into them)
            return {k.value if isinstance(k, ScalarNode) else str(build(k)): build(v)
                    for k, v in node.value}  # fmt: skip
        if isinstance(node, SequenceNode):
            return [build(v) for v in node.value]
        if isinstance(node, ScalarNode):
            if node.style in ("'", '"'):
                return node.value
            if node.value == '':
                line = node.start_mark.line + 1
                msg = f'parameters file {source!r}: no value at line {line}'
                raise RuntimeConfigError(msg)
            return scalar(node.value)
        return None  # an empty document

    return build(root)
