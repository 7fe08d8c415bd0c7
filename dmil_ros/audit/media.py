"""Pictures of chosen frames for the report, fetched again from their bags after the audit.

Only a few frames are shown (top GapScore frames and spike peaks), so rather than keeping a
picture of every frame during the audit, the bag is read once more: raw messages are skipped
unless their log time lies within ``window`` of a wanted stamp, so only those few are
deserialized and decoded (with the runtime's own decoders).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dmil_ros.audit.render import birds_eye, png_base64, thumbnail
from dmil_ros.runtime.decode import decode_image, decode_laserscan, decode_pointcloud2
from dmil_ros.runtime.errors import DecodeError

logger = logging.getLogger(__name__)
WINDOW_NS = 300_000_000


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _message(reader: Any, raw: Any) -> tuple[Any, int]:
    """Deserialized message and its header stamp; ``(None, 0)`` when unreadable."""
    try:
        msg = reader.store.deserialize_cdr(raw.data, raw.msgtype)
        return msg, _stamp(msg)
    except Exception as exc:  # any CDR failure: this message just has no picture
        logger.debug('topic %r: message at %d unreadable (%s)', raw.topic, raw.timestamp, exc)
        return None, 0


def _camera(msg: Any, topic: str) -> str:
    try:
        return png_base64(thumbnail(decode_image(msg, topic)))
    except DecodeError as exc:
        logger.warning('no thumbnail: %s', exc)
        return ''


def _bev(msg: Any, topic: str) -> str:
    try:
        if hasattr(msg, 'ranges'):
            points = decode_laserscan(msg, topic)
        else:
            points = decode_pointcloud2(msg, topic)
    except DecodeError as exc:
        logger.warning("no bird's-eye view: %s", exc)
        return ''
    return png_base64(birds_eye(points.xyz))


def fetch_media(
    bag: Path,
    stamps: Iterable[int],
    camera_topic: str = '/camera/image_raw',
    lidar_topic: str = '/lidar/points',
) -> dict[int, dict[str, str]]:
    """``{camera stamp: {'camera': png64, 'bev': png64}}`` for the wanted camera stamps."""
    from dmil_ros.bagio.reader import BagReadError, RobustReader

    wanted = sorted(set(stamps))
    out: dict[int, dict[str, str]] = {s: {} for s in wanted}
    if not wanted:
        return out
    grid = np.array(wanted, np.int64)
    # nearest LiDAR sweep per wanted camera stamp: (distance, message)
    best: dict[int, tuple[int, Any]] = {}
    try:
        reader = RobustReader(bag, topics=[camera_topic, lidar_topic])
        for raw in reader:
            j = int(np.searchsorted(grid, raw.timestamp))
            near = [k for k in (j - 1, j) if 0 <= k < grid.size]
            if not near or min(abs(int(grid[k]) - raw.timestamp) for k in near) > WINDOW_NS:
                continue
            msg, stamp = _message(reader, raw)
            if msg is None:
                continue
            if raw.topic == camera_topic and stamp in out:
                picture = _camera(msg, camera_topic)
                if picture:
                    out[stamp]['camera'] = picture
            elif raw.topic == lidar_topic:
                for k in near:
                    d = abs(int(grid[k]) - stamp)
                    if int(grid[k]) not in best or d < best[int(grid[k])][0]:
                        best[int(grid[k])] = (d, msg)
    except (BagReadError, DecodeError, OSError) as exc:
        logger.warning('bag %s: pictures incomplete (%s)', bag, exc)
    for stamp, (_, msg) in best.items():
        picture = _bev(msg, lidar_topic)
        if picture:
            out[stamp]['bev'] = picture
    return out


__all__ = ['fetch_media']
