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

"""A bag's status (ok / partial / failed) and the model kind in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from bagfactory import write_small_bag

from dmil_ros.cli import main
from models import build


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp('model') / 'heads.onnx', heads=True)


def _audit(model: Path, out: Path, *bags: Path, code: int = 0) -> dict:
    args = ['audit', *map(str, bags), '--out', str(out), '--model', str(model)]
    assert main([*args, '--clusters', '2', '--workers', '1', '--no-report']) == code
    return json.loads((out / 'summary.json').read_text())


def test_unreadable_bags_are_failed_not_partial(model: Path, tmp_path: Path) -> None:
    good = tmp_path / 'bags' / 'good'
    write_small_bag(good, frames=40)
    data = next(good.glob('*.mcap')).read_bytes()
    (tmp_path / 'files').mkdir()
    empty = tmp_path / 'files' / 'empty.mcap'
    empty.write_bytes(b'')  # bad magic
    head = tmp_path / 'files' / 'head.mcap'
    head.write_bytes(data[:200])  # header only, no complete chunk
    cut = tmp_path / 'files' / 'cut.mcap'
    cut.write_bytes(data[: len(data) // 2])
    summary = _audit(model, tmp_path / 'out', good, empty, head, cut, code=1)  # 2 failed
    status = {b['name']: (b['status'], b['frames']) for b in summary['bags']}
    assert status['empty'] == ('failed', 0)
    assert status['head'] == ('failed', 0)
    assert status['cut'][0] == 'partial'
    assert status['cut'][1] > 0
    assert status['good'][0] == 'ok'
    assert summary['frames']['failed_bags'] == 2
    assert {e['bag'] for e in summary['errors']} >= {'empty', 'head', 'cut'}


def test_summary_names_the_model_kind(model: Path, tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_small_bag(bag, frames=20)
    assert _audit(model, tmp_path / 'a', bag)['model']['kind'] == 'foreign'
    proto = onnx.load(str(model))
    onnx.helper.set_model_props(proto, {'dmil_ros.kind': 'late_fusion'})
    tagged = tmp_path / 'tagged.onnx'
    onnx.save(proto, str(tagged))
    assert _audit(tagged, tmp_path / 'b', bag)['model']['kind'] == 'late_fusion'


@pytest.mark.parametrize(
    ('flag', 'role'), [('--lidar-topic', 'LiDAR'), ('--camera-topic', 'camera')]
)
def test_a_sensor_topic_without_messages_fails_the_bag_by_name(
    model: Path, tmp_path: Path, flag: str, role: str
) -> None:
    # a mistyped topic (or a one-sensor recording): every frame ran degraded and none was
    # audited, yet the bag read 'ok' with 0 frames and the audit exited 0
    bag = tmp_path / 'bags' / 'small'
    write_small_bag(bag, frames=40)
    args = ['audit', str(bag), '--out', str(tmp_path / 'out'), '--model', str(model)]
    args += ['--clusters', '2', '--workers', '1', '--no-report', flag, '/typo']
    assert main(args) == 1
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    (entry,) = summary['bags']
    assert (entry['status'], entry['frames']) == ('failed', 0)
    messages = [e['message'] for e in summary['errors']]
    assert any(f"topic '/typo': no {role} messages in the bag" in m for m in messages)


def test_a_bag_whose_frames_all_fail_to_decode_says_why(model: Path, tmp_path: Path) -> None:
    # every image malformed (an encoding no decoder takes): no frame, and the bag said 'ok'
    bag = tmp_path / 'bags' / 'small'
    write_small_bag(bag, frames=40, encoding='yuv444_weird')
    summary = _audit(model, tmp_path / 'out', bag, code=1)
    (entry,) = summary['bags']
    assert (entry['status'], entry['frames']) == ('failed', 0)
    # the decode errors themselves, not "none paired within the slop" (review 19a #4)
    (message,) = [e['message'] for e in summary['errors']]
    assert message.startswith("topic '/camera/image_raw': 40 messages not usable (encoding)")
    assert 'yuv444_weird' in message
