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

"""The one message typestore every part of ``dmil_ros`` uses.

ROS 2 Humble's standard types (pinned, so CDR bytes do not depend on the rosbags release) plus
this package's own messages, registered from the ``.msg`` text shipped in ``dmil_ros/msg``, so
any rosbags reader can decode a bag the simulator wrote.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

STORE: Final = Stores.ROS2_HUMBLE
PACKAGE: Final = 'dmil_ros'


def custom_msg_texts() -> dict[str, str]:
    """``{'dmil_ros/msg/Name': msg_text}`` for every ``.msg`` file shipped with the package."""
    texts = {}
    for entry in sorted(resources.files('dmil_ros.msg').iterdir(), key=lambda e: e.name):
        if entry.name.endswith('.msg'):
            texts[f'{PACKAGE}/msg/{entry.name[:-4]}'] = entry.read_text(encoding='utf-8')
    return texts


@cache
def typestore() -> Typestore:
    """Humble's typestore with the ``dmil_ros`` messages registered (built once)."""
    store = get_typestore(STORE)
    for name, text in custom_msg_texts().items():
        store.register(get_types_from_msg(text, name))
    return store
