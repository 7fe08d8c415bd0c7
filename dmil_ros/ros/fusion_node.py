"""``fusion_node``: the rclpy adapter around :class:`dmil_ros.runtime.pipeline.FusionPipeline`.

Threading: the two sensor subscriptions (sensor-data QoS) run in one mutually exclusive callback
group and only append the message to a bounded inbox, then trigger a guard condition; the guard
condition's callback (its own mutually exclusive group) drains the inbox through the pipeline:
decode, pairing, ONNX inference, monitor, publishing. The diagnostics timer shares that group, so
the pipeline is never used from two threads, while a slow inference never blocks message intake
(a ``MultiThreadedExecutor`` runs the groups in parallel). When the inbox overflows, the oldest
message is dropped and counted (``inbox_full`` in the diagnostics).

Start-up fails with one log line naming the file and the problem when the model is missing or
does not follow the model contract. Parameters: :data:`dmil_ros.runtime.params.PARAMS`
(``config/fusion.yaml``); outputs: :mod:`dmil_ros.runtime.outputs`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any

import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import ParameterDescriptor  # type: ignore[import-not-found,unused-ignore]
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, LaserScan, PointCloud2

from dmil_ros.errors import DmilError
from dmil_ros.ros.convert import CONVERTERS
from dmil_ros.runtime.diagnostics import DiagnosticsTracker
from dmil_ros.runtime.model import FusionModel
from dmil_ros.runtime.outputs import NODE_NAME, TOPICS, OutputBuilder
from dmil_ros.runtime.params import PARAMS, build
from dmil_ros.runtime.pipeline import FrameResult, FusionPipeline, Header

try:  # Humble and later; older rclpy raises only KeyboardInterrupt
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover

    class ExternalShutdownException(Exception):  # type: ignore[no-redef]  # noqa: N818
        """Stand-in where rclpy lacks it."""


# what start-up reports in one line: our checks, and rclpy refusing a parameter (a YAML
# ``slop: 1`` for the float parameter raises InvalidParameterTypeException, a
# ParameterException, on Humble and Jazzy)
STARTUP_ERRORS: tuple[type[Exception], ...] = (DmilError, rclpy.exceptions.ParameterException)


class FusionNode(Node):  # type: ignore[misc]
    """Camera + LiDAR fusion with per-frame interaction estimates and a synergy alert."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._start()
        except STARTUP_ERRORS as exc:
            self.get_logger().fatal(f'cannot start: {exc}')
            self.destroy_node()  # nothing half-built stays registered with the middleware
            raise

    def _start(self) -> None:
        for p in PARAMS:
            descriptor = ParameterDescriptor(description=p.description, read_only=True)
            if p.choices:
                descriptor.additional_constraints = f'one of {", ".join(p.choices)}'
            self.declare_parameter(p.name, p.default, descriptor)
        values = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        settings = build(values)  # DmilError on a bad value
        model = FusionModel(settings.model_path, settings.provider, settings.threads)
        self.pipeline = FusionPipeline(model, settings.pipeline)
        self.builder = OutputBuilder(settings.twists)
        self.tracker = DiagnosticsTracker(self.pipeline)
        cfg = settings.pipeline

        # publishers: every output the model can fill
        self._pubs: dict[str, Any] = {}
        for topic, msgtype in TOPICS.items():
            if topic == '~/gates' and not model.has('gates'):
                continue
            if topic in ('~/interactions', '~/synergy_alert') and self.pipeline.pid_source is None:
                continue
            if topic == '~/cmd_vel' and settings.twists is None:
                continue
            self._pubs[topic] = self.create_publisher(CONVERTERS[msgtype][0], topic, 10)

        # intake: cheap callbacks that only queue the message
        self._inbox: deque[tuple[bool, Any]] = deque()
        self._inbox_max = 4 * cfg.queue_size
        self._inbox_lock = threading.Lock()
        self.inbox_drops = 0
        intake = MutuallyExclusiveCallbackGroup()
        work = MutuallyExclusiveCallbackGroup()
        self._wake = self.create_guard_condition(self._drain, callback_group=work)
        image_type = CompressedImage if settings.image_transport == 'compressed' else Image
        points_type = LaserScan if settings.points_type == 'laserscan' else PointCloud2
        self._subs = [
            self.create_subscription(
                image_type,
                cfg.camera_topic,
                lambda msg: self._enqueue(True, msg),
                qos_profile_sensor_data,
                callback_group=intake,
            ),
            self.create_subscription(
                points_type,
                cfg.lidar_topic,
                lambda msg: self._enqueue(False, msg),
                qos_profile_sensor_data,
                callback_group=intake,
            ),
        ]
        self._timer = self.create_timer(
            settings.diagnostics_period, self._diagnostics, callback_group=work
        )
        self.get_logger().info(
            f'model {model.path} ({model.info.kind}) on {model.provider}; '
            f'{cfg.camera_topic} + {cfg.lidar_topic} -> {", ".join(self._pubs)}; '
            f'synergy source {self.pipeline.pid_source or "unavailable"}'
        )

    # ---- intake (sensor callback group) ------------------------------------------------------

    def _enqueue(self, camera: bool, msg: Any) -> None:
        topic = self.pipeline.config.camera_topic if camera else self.pipeline.config.lidar_topic
        with self._inbox_lock:
            if len(self._inbox) >= self._inbox_max:
                self._inbox.popleft()
                self.inbox_drops += 1
            self._inbox.append((camera, msg))
            self.tracker.arrived(topic, time.monotonic())
        self._wake.trigger()

    # ---- work (inference callback group) -----------------------------------------------------

    def _drain(self) -> None:
        # only what is queued now: a drain that ran until the inbox is empty would never return
        # while input outpaces inference, and starve the diagnostics timer of this group (what
        # came meanwhile triggered the guard condition again, so the executor calls back)
        with self._inbox_lock:
            n = len(self._inbox)
        for _ in range(n):
            with self._inbox_lock:
                if not self._inbox:
                    return
                camera, msg = self._inbox.popleft()
            feed = self.pipeline.feed_camera if camera else self.pipeline.feed_lidar
            jobs = feed(msg)
            for result in self.pipeline.infer(jobs):
                self._publish(result)

    def _publish(self, result: FrameResult) -> None:
        for topic, msg in self.builder.frame(result):
            pub = self._pubs.get(topic)
            if pub is not None:
                pub.publish(CONVERTERS[TOPICS[topic]][1](msg))

    def _diagnostics(self) -> None:
        with self._inbox_lock:
            statuses = self.tracker.report(time.monotonic())
        if self.inbox_drops:
            s = statuses[0]
            values = (*s.values, ('drop: inbox_full', str(self.inbox_drops)))
            statuses[0] = type(s)(s.level, s.name, s.message, s.hardware_id, values)
        now = self.get_clock().now().to_msg()
        header = Header(int(now.sec), int(now.nanosec), '')
        msg = self.builder.diagnostics(header, statuses)
        self._pubs['diagnostics'].publish(CONVERTERS[TOPICS['diagnostics']][1](msg))


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run dmil_ros fusion_node`` and the launch file."""
    rclpy.init(args=args)
    node = None
    executor = MultiThreadedExecutor(num_threads=3)
    try:
        try:
            node = FusionNode()
        except STARTUP_ERRORS:  # logged by the node, one line
            sys.exit(1)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
