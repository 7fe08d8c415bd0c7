"""The robot's discrete actions, shared by the simulator, the trainer, the models and the node."""

from __future__ import annotations

from typing import Final

ACTIONS: Final[tuple[str, ...]] = ('forward', 'left', 'right', 'stop')
"""Action labels in class-index order; models and bags use these indices and names."""

ACTION_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(ACTIONS)}

COMPONENTS: Final[tuple[str, ...]] = ('redundancy', 'unique_camera', 'unique_lidar', 'synergy')
"""The four DMIL components / PID atoms, in the order gates and estimates are published."""

FAMILIES: Final[tuple[str, ...]] = ('R', 'U_camera', 'U_lidar', 'S')
"""Simulator scene families, each designed to hold mostly one interaction (same order)."""
