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

"""RobustReader on damaged bags (review 9): what a damaged bag still yields, checked against
the messages written."""

from __future__ import annotations

import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from dmil_ros.bagio import BagReadError, RawMessage, RobustReader, reader, typestore

STRING = 'std_msgs/msg/String'


def write_mcap(path: Path, n: int = 20) -> None:
    store = typestore()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection('/a', STRING, typestore=store)
        for i in range(n):
            msg = store.types[STRING](data=f'message {i}')
            writer.write(conn, 10**18 + i, bytes(store.serialize_cdr(msg, STRING)))


def test_single_mcap_file_path_gets_the_record_length_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F: a summary record claiming 2**36 bytes is refused before rosbags allocates it, when
    the path names the .mcap file itself, not only its directory."""
    write_mcap(tmp_path / 'bag')
    store = tmp_path / 'bag' / 'bag.mcap'
    data = bytearray(store.read_bytes())
    (summary_start,) = struct.unpack_from('<Q', data, len(data) - 8 - 20)
    data[summary_start + 1 : summary_start + 9] = struct.pack('<Q', 2**36)
    store.write_bytes(bytes(data))
    checked: list[Path] = []
    real = reader.check_mcap_records

    def spy(path: Path) -> str | None:
        checked.append(path)
        return real(path)

    monkeypatch.setattr(reader, 'check_mcap_records', spy)
    got = RobustReader(store)
    messages = list(got)
    assert checked == [store]
    assert got.mode == 'salvage'
    assert any('claims 68719476736 bytes' in i.message for i in got.issues)
    assert len(messages) == 20


def messages_of(
    path: Path, n: int, topics: tuple[str, ...] = ('/a',)
) -> list[tuple[int, str, bytes]]:
    """What write_bag_at writes: (log time, topic, CDR) in time order."""
    store = typestore()
    out = []
    for i in range(n):
        for topic in topics:
            msg = store.types[STRING](data=f'{topic} {i}')
            out.append((10**18 + i * 1_000_000, topic, bytes(store.serialize_cdr(msg, STRING))))
    return out


def write_bag_at(path: Path, rows: list[tuple[int, str, bytes]], **kw: object) -> None:
    store = typestore()
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    for name, value in kw.items():
        getattr(writer, name)(*value)  # type: ignore[operator]
    with writer:
        conns = {
            t: writer.add_connection(t, STRING, typestore=store)
            for t in sorted({r[1] for r in rows})
        }
        for t, topic, data in rows:
            writer.write(conns[topic], t, data)


def split_bag(root: Path, parts: int, per: int) -> list[tuple[int, str, bytes]]:
    """One rosbag2 directory of ``parts`` MCAP files split_0 .. split_{parts-1}, each ``per``
    messages, and a metadata.yaml listing them (as a split recording does)."""
    rows = messages_of(root, parts * per)
    root.mkdir()
    for k in range(parts):
        tmp = root.parent / f'part{k}'
        write_bag_at(tmp, rows[k * per : (k + 1) * per])
        (tmp / f'part{k}.mcap').rename(root / f'split_{k}.mcap')
    names = '\n'.join(f'  - split_{k}.mcap' for k in range(parts))
    (root / 'metadata.yaml').write_text(
        f'rosbag2_bagfile_information:\n  compression_mode: ""\n  relative_file_paths:\n{names}\n'
    )
    return rows


def test_split_parts_are_read_in_numeric_order(tmp_path: Path) -> None:
    """B: split_10 comes after split_9, not after split_1 (no metadata.yaml: a recorder killed)."""
    rows = split_bag(tmp_path / 'bag', 12, 3)
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    got = [(m.timestamp, m.topic, m.data) for m in RobustReader(tmp_path / 'bag')]
    assert got == rows
    # the parts are named after the folder as recorded ('split'), not as renamed since ('bag')
    assert reader.separate_recordings(tmp_path / 'bag') is None


def test_separate_recordings_in_one_folder_are_refused_by_name(tmp_path: Path) -> None:
    """Storage files without metadata.yaml that are not one recording's parts: read as one
    bag, their messages merged by stamp (train, evaluate and replay read such a folder so)."""
    rows = messages_of(tmp_path, 6)
    root = tmp_path / 'drives'
    root.mkdir()
    for k, name in enumerate(('monday_0', 'tuesday_0')):
        write_bag_at(tmp_path / name, rows[3 * k : 3 * k + 3])
        (tmp_path / name / f'{name}.mcap').rename(root / f'{name}.mcap')
    assert reader.separate_recordings(root) == [root / 'monday_0.mcap', root / 'tuesday_0.mcap']
    with pytest.raises(BagReadError, match=r'separate recordings \(monday_0.mcap, tuesday_0'):
        RobustReader(root)
    # each file is a bag of its own
    got = [(m.timestamp, m.topic, m.data) for m in RobustReader(root / 'tuesday_0.mcap')]
    assert got == rows[3:]


def test_missing_split_part_is_an_issue(tmp_path: Path) -> None:
    """C: metadata.yaml lists 3 parts, 1 is left: its messages come back, and the read says
    that parts are missing (it used to claim a complete read)."""
    rows = split_bag(tmp_path / 'bag', 3, 4)
    (tmp_path / 'bag' / 'split_1.mcap').unlink()
    (tmp_path / 'bag' / 'split_2.mcap').unlink()
    reader = RobustReader(tmp_path / 'bag')
    got = [(m.timestamp, m.topic, m.data) for m in reader]
    assert got == rows[:4]
    assert not reader.complete
    assert any("'split_1.mcap', 'split_2.mcap'" in i.message for i in reader.issues)


def test_listed_files_block_and_flow() -> None:
    text = 'a:\n  relative_file_paths:\n    - x_0.db3\n    - "x_1.db3"\n  version: 8\n'
    assert reader.listed_files(text) == ['x_0.db3', 'x_1.db3']
    assert reader.listed_files('  relative_file_paths: [a.mcap, b.mcap]\n') == ['a.mcap', 'b.mcap']
    assert reader.listed_files('version: 8\n') is None


def test_file_compressed_bag_is_read(tmp_path: Path) -> None:
    """D: `ros2 bag record --compression-mode file` writes .mcap.zstd; rosbags reads it."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    rows = messages_of(tmp_path, 10)
    write_bag_at(
        tmp_path / 'bag', rows, set_compression=(CompressionMode.FILE, CompressionFormat.ZSTD)
    )
    assert [p.name for p in (tmp_path / 'bag').glob('*.zstd')]
    reader = RobustReader(tmp_path / 'bag')
    assert [(m.timestamp, m.topic, m.data) for m in reader] == rows
    assert reader.complete


def test_cut_compressed_chunk_gives_its_head(tmp_path: Path) -> None:
    """E: a zstd chunk cut short (a recorder killed) still yields the messages of its decodable
    head, each byte-identical to what was written (they used to be dropped with the chunk)."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    store = typestore()
    letters = [chr(c) for c in range(65, 91)]
    rows = []  # 40 messages of 20 kB of letters: one ~1 MB chunk of many zstd blocks
    for i in range(40):
        text = ''.join(random.Random(i).choices(letters, k=20_000))
        data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
        rows.append((10**18 + i, '/a', data))

    write_bag_at(
        tmp_path / 'bag', rows, set_compression=(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    )
    file = tmp_path / 'bag' / 'bag.mcap'
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    reader = RobustReader(file)
    got = [(m.timestamp, m.topic, m.data) for m in reader]
    assert reader.mode == 'salvage'
    assert len(got) > 0
    assert got == rows[: len(got)]  # a prefix, byte-identical
    assert any('stream decoded to' in i.message for i in reader.issues)


def test_salvage_fills_the_topic_list(tmp_path: Path) -> None:
    """G: the bag's topics are known in salvage mode too (replay names them when an input
    topic is missing)."""
    rows = messages_of(tmp_path, 10, topics=('/a', '/b'))
    write_bag_at(tmp_path / 'bag', rows)
    file = tmp_path / 'bag' / 'bag.mcap'
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 40])  # no footer: salvage
    reader = RobustReader(file, topics=['/a'])
    list(reader)
    assert reader.mode == 'salvage'
    assert reader.available == {'/a': STRING, '/b': STRING}


def test_switch_to_salvage_loses_nothing_at_a_shared_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H: the indexed read fails after yielding /a at a stamp that /b shares: salvage must still
    give /b at that stamp (it skipped every message stamped <= the last one yielded)."""
    rows = messages_of(tmp_path, 6, topics=('/a', '/b'))
    write_bag_at(tmp_path / 'bag', rows)
    real = RobustReader._indexed

    def failing(self: RobustReader) -> Iterator[RawMessage]:
        for k, message in enumerate(real(self)):
            if k == 5:  # after (t0, /a) (t0, /b) (t1, /a) (t1, /b) (t2, /a)
                raise OSError('disk went away')
            yield message

    monkeypatch.setattr(RobustReader, '_indexed', failing)
    reader = RobustReader(tmp_path / 'bag')
    got = sorted((m.timestamp, m.topic, m.data) for m in reader)
    assert reader.mode == 'salvage'
    assert got == sorted(rows)  # each exactly once


def test_a_damaged_first_chunk_costs_its_own_messages_only(tmp_path: Path) -> None:
    """rosbags declares each channel inside the first chunk that uses it; the summary section
    repeats the declarations. A damaged first chunk used to lose every later message (their
    channel was never read); now it loses its own (review 10, audit 1)."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode
    from rosbags.rosbag2.storage_mcap import McapReader

    store = typestore()
    rows = []  # 20 kB messages of letters on two topics: about 1 MB chunks
    for i in range(150):
        text = ''.join(random.Random(i).choices('ABCDEFGH', k=20_000))
        data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
        rows.append((10**18 + i, '/a' if i % 3 else '/b', data))
    write_bag_at(
        tmp_path / 'bag', rows, set_compression=(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    )
    file = tmp_path / 'bag' / 'bag.mcap'
    intact = McapReader(file)
    intact.open()
    chunks = sorted(intact.chunks, key=lambda c: c.chunk_start_offset)
    intact.close()
    assert len(chunks) >= 3
    first_end = chunks[0].message_end_time
    data = bytearray(file.read_bytes())
    at = chunks[0].chunk_start_offset + 9 + 60  # inside the first chunk's zstd stream
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    file.write_bytes(bytes(data))
    got = RobustReader(tmp_path / 'bag')
    messages = [(m.timestamp, m.topic, m.data) for m in got]
    assert got.mode == 'salvage'
    assert messages == [r for r in rows if r[0] > first_end]
    assert not any('never read' in i.message for i in got.issues)


def test_messages_of_a_channel_never_declared_are_counted(tmp_path: Path) -> None:
    """Without the summary (the file cut short) and with the first chunk damaged, nothing
    declares the channel: the messages are lost, and the read says how many."""
    rows = messages_of(tmp_path, 10)
    write_bag_at(tmp_path / 'bag', rows)
    file = tmp_path / 'bag' / 'bag.mcap'
    data = bytearray(file.read_bytes())
    channel = data.index(b'/a') - 4 - 4  # the channel record's body: id u16, schema id u16
    data[channel : channel + 2] = struct.pack('<H', 999)  # declares another channel id
    (summary_start,) = struct.unpack_from('<Q', data, len(data) - 8 - 20)
    file.write_bytes(bytes(data[:summary_start]))  # no summary: nothing declares channel 1
    got = RobustReader(file)
    assert list(got) == []
    assert any(
        i.message == '10 messages on channels whose record was never read: skipped'
        for i in got.issues
    )


def test_a_declaration_too_short_to_read_is_one_issue(tmp_path: Path) -> None:
    """A top-level Channel record with a 2-byte body: the declarations pre-pass let its
    struct.error stop the whole salvage; it is one skipped record, as in the scan."""
    from dmil_ros.bagio.mcap import MCAP_MAGIC, McapSalvager

    def record(op: int, body: bytes) -> bytes:
        return struct.pack('<BQ', op, len(body)) + body

    file = tmp_path / 'x.mcap'
    file.write_bytes(MCAP_MAGIC + record(0x04, b'\x01\x00') + record(0x02, bytes(20)))
    issues: list = []
    assert list(McapSalvager(file, None, issues).messages()) == []
    assert [i.message for i in issues] == [
        'record opcode 0x04 skipped: error: unpack requires a buffer of 4 bytes'
    ]


@pytest.mark.parametrize('cut', [None, 0.6])
def test_a_storage_file_metadata_does_not_list_is_an_issue_and_never_read(
    tmp_path: Path, cut: float | None
) -> None:
    """Another recording's .mcap copied into a bag folder (whole, or cut short by the copy):
    the bag is what metadata.yaml lists, read indexed as before; the stray file is named, not
    salvaged and merged in by stamp (review 19b #7)."""
    rows = messages_of(tmp_path, 20)
    write_bag_at(tmp_path / 'bag', rows)
    other = [(t + 500_000, '/a', d.replace(b'/a', b'/b')) for t, _, d in messages_of(tmp_path, 30)]
    write_bag_at(tmp_path / 'other', other)
    data = (tmp_path / 'other' / 'other.mcap').read_bytes()
    stray = tmp_path / 'bag' / 'other_copy.mcap'
    stray.write_bytes(data if cut is None else data[: int(len(data) * cut)])
    got = RobustReader(tmp_path / 'bag')
    assert [(m.timestamp, m.topic, m.data) for m in got] == rows
    assert got.mode == 'indexed'
    assert not got.complete
    assert len(got.issues) == 1
    assert "['other_copy.mcap'] not listed in metadata.yaml: not read" in got.issues[0].message
    assert reader.storage_files(tmp_path / 'bag') == [tmp_path / 'bag' / 'bag.mcap']
    # the stray file is a bag of its own when named
    assert reader.storage_files(stray) == [stray]


def test_a_folder_whose_listed_files_are_all_gone_reads_the_others_as_without_metadata(
    tmp_path: Path,
) -> None:
    """Damaged metadata or renamed files: the listing names nothing there, so the folder reads
    as one without metadata.yaml (both named as issues); separate recordings stay refused."""
    rows = messages_of(tmp_path, 5)
    write_bag_at(tmp_path / 'bag', rows)
    (tmp_path / 'bag' / 'bag.mcap').rename(tmp_path / 'bag' / 'renamed.mcap')
    got = RobustReader(tmp_path / 'bag')
    assert [(m.timestamp, m.topic, m.data) for m in got] == rows
    text = ' | '.join(i.message for i in got.issues)
    assert "['bag.mcap'] listed in metadata.yaml are missing" in text
    assert "['renamed.mcap'] not listed in metadata.yaml: read in place of the listed" in text
    shutil.copy(tmp_path / 'bag' / 'renamed.mcap', tmp_path / 'bag' / 'other.mcap')
    with pytest.raises(BagReadError, match='lists none of 2 storage files that are separate'):
        RobustReader(tmp_path / 'bag')


def test_one_intact_mcap_without_metadata_is_read_indexed(tmp_path: Path) -> None:
    """A bag folder copied without its metadata.yaml: the MCAP file is self-contained, so it
    is read through its index, complete; it went to salvage and was reported as damaged
    (review 20b #10)."""
    rows = messages_of(tmp_path, 20)
    write_bag_at(tmp_path / 'bag', rows)
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    got = RobustReader(tmp_path / 'bag')
    assert [(m.timestamp, m.topic, m.data) for m in got] == rows
    assert got.mode == 'indexed'
    assert got.complete
    assert got.issues == []
    # cut short, the same folder still goes to salvage and says so
    mcap = tmp_path / 'bag' / 'bag.mcap'
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    cut = RobustReader(tmp_path / 'bag')
    assert 0 < len(list(cut)) <= len(rows)  # a small file: its one chunk may survive whole
    assert cut.mode == 'salvage'
    assert not cut.complete
