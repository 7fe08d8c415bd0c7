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

"""Pictures of chosen frames for the report, fetched again from their bags after the audit.

Only a few frames are shown (top GapScore frames and spike peaks), so rather than keeping a
picture of every frame during the audit, the bag is read once more: each raw message's header
stamp is read from its first CDR bytes, and only the images with a wanted stamp and the LiDAR
sweeps they were paired with (by header stamp) are deserialized and decoded (with the runtime's
own decoders).
Log (recording) times are not used: a recorder may log messages well after their stamps.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dmil_ros.audit.render import birds_eye, png_base64, thumbnail
from dmil_ros.runtime.decode import decode_image, decode_laserscan, decode_pointcloud2
from dmil_ros.runtime.errors import DecodeError
from dmil_ros.runtime.faults import stamp_ns

logger = logging.getLogger(__name__)
WINDOW_NS = 100_000_000  # max |LiDAR stamp - camera stamp| of a bird's-eye view


def _message(reader: Any, raw: Any) -> tuple[Any, int]:
    """Deserialized message and its header stamp; ``(None, 0)`` when unreadable."""
    try:
        msg = reader.store.deserialize_cdr(raw.data, raw.msgtype)
        return msg, stamp_ns(msg)
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


def _header_stamp(reader: Any, raw: Any) -> int | None:
    """The header stamp (ns) of a serialized message whose first field is a std_msgs/Header.

    The CDR layout puts it right after the 4-byte encapsulation header: int32 sec, uint32
    nanosec, in the byte order the encapsulation names; read there without deserializing the
    message (an image or a cloud). Falls back to deserializing; None when unreadable.
    """
    data = raw.data
    if len(data) >= 12 and data[0] == 0 and data[1] in (0, 1):
        order = '<' if data[1] == 1 else '>'
        sec, nanosec = struct.unpack_from(f'{order}iI', data, 4)
        if nanosec < 1_000_000_000:
            return int(sec) * 1_000_000_000 + int(nanosec)
    msg, stamp = _message(reader, raw)
    return stamp if msg is not None else None


def fetch_media(
    bag: Path,
    stamps: Iterable[int],
    camera_topic: str = '/camera/image_raw',
    lidar_topic: str = '/lidar/points',
    *,
    window_ns: int = WINDOW_NS,
    sweeps: Mapping[int, int] | None = None,
) -> dict[int, dict[str, str]]:
    """``{camera stamp: {'camera': png64, 'bev': png64}}`` for the wanted camera stamps.

    Matched by sensor time, never by recording (log) time, which may lag the stamps: the image
    whose header stamp equals the wanted stamp, and the LiDAR sweep the frame was paired with,
    ``sweeps[camera stamp]`` (its header stamp); a frame not in ``sweeps`` ran without one and
    gets no bird's-eye view. Without ``sweeps``, the sweep whose header stamp is nearest to the
    camera's within ``window_ns``. A stamp without a picture lacks the key.
    """
    from dmil_ros.bagio.reader import BagReadError, RobustReader

    wanted = sorted(set(stamps))
    out: dict[int, dict[str, str]] = {s: {} for s in wanted}
    if not wanted:
        return out
    grid = np.array(wanted, np.int64)
    paired: dict[int, list[int]] = {}  # LiDAR stamp -> the wanted camera stamps paired with it
    for s in wanted:
        if sweeps is not None and s in sweeps:
            paired.setdefault(int(sweeps[s]), []).append(s)
    # the LiDAR sweep per wanted camera stamp: (distance, raw message)
    best: dict[int, tuple[int, Any]] = {}
    reader = None
    try:
        # the audit's first pass already reported this bag's damage (a second warning per bag)
        reader = RobustReader(bag, topics=[camera_topic, lidar_topic], warn=False)
        for raw in reader:
            stamp = _header_stamp(reader, raw)
            if stamp is None:
                continue
            if raw.topic == camera_topic:
                if stamp in out and 'camera' not in out[stamp]:
                    msg, _ = _message(reader, raw)
                    picture = _camera(msg, camera_topic) if msg is not None else ''
                    if picture:
                        out[stamp]['camera'] = picture
                continue
            if raw.topic != lidar_topic:
                continue
            if sweeps is not None:  # the paired sweep itself (its first copy)
                for s in paired.get(stamp, ()):
                    best.setdefault(s, (0, raw))
                continue
            j = int(np.searchsorted(grid, stamp))
            for k in (j - 1, j):
                if 0 <= k < grid.size:
                    d = abs(int(grid[k]) - stamp)
                    if d <= window_ns and (int(grid[k]) not in best or d < best[int(grid[k])][0]):
                        best[int(grid[k])] = (d, raw)
    except (BagReadError, DecodeError, OSError) as exc:
        logger.warning('bag %s: pictures incomplete (%s)', bag, exc)
    for stamp, (_, raw) in best.items():
        msg, _ = _message(reader, raw)
        picture = _bev(msg, lidar_topic) if msg is not None else ''
        if picture:
            out[stamp]['bev'] = picture
    missing = [s for s in wanted if set(out[s]) != {'camera', 'bev'}]
    if missing:  # the audit's summary warns of it, per bag (runner)
        logger.debug('bag %s: %d of %d frames lack a picture', bag, len(missing), len(wanted))
    return out


__all__ = ['fetch_media']
