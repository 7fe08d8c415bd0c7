"""RobustReader on damaged bags (review 9): what a damaged bag still yields, checked against
the messages written."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from dmil_ros.bagio import RobustReader, reader, typestore

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
