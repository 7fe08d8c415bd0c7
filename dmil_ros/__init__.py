"""dmil_ros: interaction-aware camera + LiDAR fusion for ROS 2.

Subpackages by concern: ``pid`` (exact and sample-level PID estimators), ``sim`` (the indoor
simulator that records rosbag2), ``model`` and ``train`` (DMIL and its baselines), ``runtime`` (the
ROS-free fusion pipeline), ``ros`` (the thin rclpy adapter), ``audit`` (offline PID audits) and
``bagio`` (rosbag2 I/O and the message typestore). Nothing here imports ROS or torch at import
time.
"""

from __future__ import annotations

__version__ = '0.1.0'

__all__ = ['__version__']
