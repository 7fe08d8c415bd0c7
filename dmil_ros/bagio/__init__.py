"""rosbag2 I/O: the pinned typestore and robust bag reading/writing (no ROS needed)."""

from __future__ import annotations

from dmil_ros.bagio.typestore import STORE, custom_msg_texts, typestore

__all__ = ['STORE', 'custom_msg_texts', 'typestore']
