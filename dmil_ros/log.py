"""Logging set-up for the command-line tools (the ROS node uses the rclpy logger instead)."""

from __future__ import annotations

import logging

LEVELS = ('debug', 'info', 'warning', 'error')


def setup_logging(level: str = 'info') -> None:
    """Configure the root logger once: ``LEVEL name: message`` on stderr."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format='%(levelname)s %(name)s: %(message)s',
        force=True,
    )
