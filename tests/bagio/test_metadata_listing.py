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

"""``relative_file_paths`` in every valid YAML form (review 22c, F10): a flow list over two
lines was read as an empty list, so a complete bag was reported partial and a stray storage
file beside a split bag was read into it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from dmil_ros.bagio import reader
from dmil_ros.bagio.reader import RobustReader
from tests.bagio.test_reader_salvage import split_bag, write_bag_at, write_mcap


def test_listed_files_in_other_yaml_forms() -> None:
    head = 'rosbag2_bagfile_information:\n  version: 8\n'
    assert reader.listed_files(head + '  relative_file_paths: [\n    a.mcap]\n') == ['a.mcap']
    two = head + '  relative_file_paths: [a_0.mcap,\n    "a_1.mcap"]\n  message_count: 3\n'
    assert reader.listed_files(two) == ['a_0.mcap', 'a_1.mcap']
    assert reader.listed_files(head + '  relative_file_paths: []\n') == []
    assert reader.listed_files(head + '  relative_file_paths: [\n') == []  # no YAML: lists none


def test_a_complete_bag_with_a_two_line_flow_list_is_complete(tmp_path: Path) -> None:
    write_mcap(tmp_path / 'bag', n=5)
    meta = tmp_path / 'bag' / 'metadata.yaml'
    text, count = re.subn(
        r'relative_file_paths:\n\s*- bag.mcap\n',
        'relative_file_paths: [\n    bag.mcap]\n',
        meta.read_text(),
    )
    assert count == 1
    meta.write_text(text)
    bag = RobustReader(tmp_path / 'bag')
    assert len(list(bag)) == 5
    assert bag.complete, bag.issues


def test_a_stray_file_beside_a_split_bag_listed_over_lines_is_not_read(tmp_path: Path) -> None:
    rows = split_bag(tmp_path / 'bag', parts=2, per=4)
    write_bag_at(tmp_path / 'other', [(10**18 + 99, '/a', rows[0][2])])
    shutil.copyfile(tmp_path / 'other' / 'other.mcap', tmp_path / 'bag' / 'stray.mcap')
    (tmp_path / 'bag' / 'metadata.yaml').write_text(
        'rosbag2_bagfile_information:\n  compression_mode: ""\n'
        '  relative_file_paths: [split_0.mcap,\n    split_1.mcap]\n'
    )
    bag = RobustReader(tmp_path / 'bag')
    assert sorted((m.timestamp, m.topic, m.data) for m in bag) == sorted(rows)
    assert any("['stray.mcap'] not listed" in i.message for i in bag.issues)
