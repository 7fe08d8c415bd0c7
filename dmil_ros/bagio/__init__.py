"""rosbag2 I/O: the pinned typestore and robust bag reading (no ROS needed)."""

from __future__ import annotations

from dmil_ros.bagio.reader import BagReadError, RawMessage, ReadIssue, RobustReader
from dmil_ros.bagio.typestore import STORE, custom_msg_texts, typestore

__all__ = [
    'STORE',
    'BagReadError',
    'RawMessage',
    'ReadIssue',
    'RobustReader',
    'custom_msg_texts',
    'typestore',
]
