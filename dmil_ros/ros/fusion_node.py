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

"""``fusion_node``: the rclpy adapter around :class:`dmil_ros.runtime.pipeline.FusionPipeline`.

Threading: the two sensor subscriptions (sensor-data QoS) run in one mutually exclusive callback
group and only put the message in an :class:`~dmil_ros.runtime.inbox.Inbox`, then trigger a
guard condition; the guard condition's callback (its own mutually exclusive group) drains the
inbox through the pipeline: decode, pairing, ONNX inference, monitor, publishing. The
diagnostics timer shares that group, so the pipeline is never used from two threads, while a
slow inference never blocks message intake (a ``MultiThreadedExecutor`` runs the groups in
parallel). The inbox holds ``queue_size`` messages per sensor and drops a message that waited
more than ``silence_timeout`` s: under overload the node acts on recent frames, not on a
backlog (``<sensor>_inbox_full`` / ``<sensor>_stale`` and the queue wait in the diagnostics).

An error the pipeline does not expect (ONNX Runtime failing, a CUDA error) is counted and logged
for the message that caused it, and so is a diagnostics report that fails; the node keeps
running. Shutdown (Ctrl-C, launch stopping it) lets a running callback finish and publishes
nothing after: no traceback on Humble or Jazzy. A callback still running after
``STOP_TIMEOUT_S`` (a hung GPU call) is not waited for: the process exits with code 1.

Start-up fails with one log line naming the file and the problem when the model is missing or
does not follow the model contract. Parameters: :data:`dmil_ros.runtime.params.PARAMS`
(``config/fusion.yaml``); outputs: :mod:`dmil_ros.runtime.outputs`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
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
from dmil_ros.runtime.inbox import Inbox
from dmil_ros.runtime.outputs import NODE_NAME, TOPICS, OutputBuilder, StaleCommand
from dmil_ros.runtime.params import PARAMS, build
from dmil_ros.runtime.pipeline import FusionPipeline
from dmil_ros.runtime.records import FrameResult, Header, planar_warning

try:  # Humble and later; older rclpy raises only KeyboardInterrupt
    from rclpy.executors import ExternalShutdownException
except ImportError:  # pragma: no cover

    class ExternalShutdownException(Exception):  # type: ignore[no-redef]  # noqa: N818
        """Stand-in where rclpy lacks it."""


# what start-up reports in one line: our checks, rclpy refusing a parameter (a YAML
# ``slop: 1`` for the float parameter raises InvalidParameterTypeException, a
# ParameterException, on Humble and Jazzy) and a topic name rclpy cannot use
# (InvalidTopicNameException, a NameValidationException)
STARTUP_ERRORS: tuple[type[Exception], ...] = (
    DmilError,
    rclpy.exceptions.ParameterException,
    rclpy.exceptions.NameValidationException,
)


STOP_TIMEOUT_S = 5.0  # the longest shutdown waits for a running inference


# the subscriptions' message types, as NodeSettings names them
_SENSOR_MSGS: dict[str, Any] = {
    'sensor_msgs/msg/Image': Image,
    'sensor_msgs/msg/CompressedImage': CompressedImage,
    'sensor_msgs/msg/PointCloud2': PointCloud2,
    'sensor_msgs/msg/LaserScan': LaserScan,
}


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
        model = settings.load_model()
        self.pipeline = FusionPipeline(model, settings.pipeline)
        self.builder = OutputBuilder(settings.twists)
        cfg = settings.pipeline
        self.inbox = Inbox(cfg.queue_size, cfg.silence_timeout)
        planar = planar_warning(cfg.lidar_topic, model.spec.beams)
        if settings.points_type == 'laserscan' and planar:
            self.get_logger().warning(planar)
        self.tracker = DiagnosticsTracker(self.pipeline, inbox=self.inbox, start=time.monotonic())

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
        self._stopping = threading.Event()
        self._work_lock = threading.Lock()  # held by a running drain / diagnostics callback
        intake = MutuallyExclusiveCallbackGroup()
        work = MutuallyExclusiveCallbackGroup()
        self._wake = self.create_guard_condition(self._drain, callback_group=work)
        image_type = _SENSOR_MSGS[settings.image_msgtype]
        points_type = _SENSOR_MSGS[settings.points_msgtype]
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
        # cmd_vel watchdog: one zero Twist when no frame came for silence_timeout
        self._command = StaleCommand(cfg.silence_timeout)
        if '~/cmd_vel' in self._pubs:
            self._watchdog = self.create_timer(
                cfg.silence_timeout / 2, self._stop_stale_command, callback_group=work
            )
        graphs = ' with CUDA graphs' if model.cuda_graphs else ''
        self.get_logger().info(
            f'model {model.path} ({model.info.kind}) on {model.provider}{graphs}; '
            f'{cfg.camera_topic} + {cfg.lidar_topic} -> {", ".join(self._pubs)}; '
            f'synergy source {self.pipeline.pid_source or "unavailable"}'
        )

    # ---- intake (sensor callback group) ------------------------------------------------------

    def _enqueue(self, camera: bool, msg: Any) -> None:
        if self._stopping.is_set():
            return
        topic = self.pipeline.config.camera_topic if camera else self.pipeline.config.lidar_topic
        now = time.monotonic()
        self.inbox.put(camera, msg, now)
        self.tracker.arrived(topic, now)
        try:
            self._wake.trigger()
        except Exception:
            if not self._stopping.is_set():
                raise
            # the guard condition was destroyed under a callback still running at shutdown

    # ---- work (inference callback group) -----------------------------------------------------

    def _drain(self) -> None:
        # only what is queued now: a drain that ran until the inbox is empty would never return
        # while input outpaces inference, and starve the diagnostics timer of this group (what
        # came meanwhile triggered the guard condition again, so the executor calls back)
        with self._work_lock:
            for _ in range(len(self.inbox)):
                item = None if self._stopping.is_set() else self.inbox.pop(time.monotonic())
                if item is None:
                    return
                camera, msg = item
                feed = self.pipeline.feed_camera if camera else self.pipeline.feed_lidar
                try:
                    results = self.pipeline.infer(feed(msg))
                except Exception as exc:
                    self._skipped('model', exc)
                    continue
                if not all(self._publish_or_count(r) for r in results):
                    return  # publishing into a context shut down under us

    def _publish_or_count(self, result: FrameResult) -> bool:
        """Publish one frame; a failure is counted (``publish: <Error>``). False: the node is
        stopping or its context was shut down under it."""
        try:
            self._publish(result)
        except Exception as exc:
            if self._stopping.is_set() or not self._context_ok():
                return False
            self._skipped('publish', exc)
        return True

    def _skipped(self, stage: str, exc: Exception) -> None:
        """Count and log an error that cost one frame; the node keeps running."""
        self._count_error(stage, exc, 'frame skipped')

    def _count_error(self, stage: str, exc: Exception, what: str) -> None:
        """Count an error for the diagnostics (``<stage>: <Error>``) and log it, throttled."""
        text = self.pipeline.count_error(stage, exc)
        self.get_logger().error(f'{what}: {text}', throttle_duration_sec=5.0)

    def _publish(self, result: FrameResult) -> None:
        for topic, msg in self.builder.frame(result):
            pub = self._pubs.get(topic)
            if pub is not None:
                pub.publish(CONVERTERS[TOPICS[topic]][1](msg))
                if topic == '~/cmd_vel':
                    self._command.sent(msg, time.monotonic())

    def _stop_stale_command(self) -> None:
        """Send a zero Twist once when the last non-zero one is older than silence_timeout."""
        with self._work_lock:
            if self._stopping.is_set() or not self._command.due(time.monotonic()):
                return
            try:
                zero = CONVERTERS[TOPICS['~/cmd_vel']][1](self.builder.twist(0.0, 0.0))
                self._pubs['~/cmd_vel'].publish(zero)
            except Exception as exc:
                if self._context_ok():
                    self._count_error('cmd_vel', exc, 'zero cmd_vel not published')
                return
            self.get_logger().warning(
                f'no frame for {self._command.timeout:g} s: zero cmd_vel sent (the last '
                'command is stale)',
                throttle_duration_sec=5.0,
            )

    def _diagnostics(self) -> None:
        with self._work_lock:
            if self._stopping.is_set():
                return
            try:
                statuses = self.tracker.report(time.monotonic())
                now = self.get_clock().now().to_msg()
                header = Header(int(now.sec), int(now.nanosec), '')
                msg = self.builder.diagnostics(header, statuses)
                self._pubs['diagnostics'].publish(CONVERTERS[TOPICS['diagnostics']][1](msg))
            except Exception as exc:
                if not self._context_ok():
                    return  # the context was shut down under us (Ctrl-C on Humble)
                # counted and logged like a frame's publish error: an exception out of a timer
                # callback would end executor.spin() and the node with it
                self._count_error('diagnostics', exc, 'diagnostics not published')

    def _context_ok(self) -> bool:
        context = getattr(self, 'context', None)
        return context is None or bool(context.ok())

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Let a running drain / diagnostics callback finish (up to ``timeout`` s: a hung GPU
        call must not hang shutdown); none does anything after. False: it timed out."""
        self._stopping.set()
        if not self._work_lock.acquire(timeout=timeout):
            self.get_logger().warning(
                f'shutdown: inference still running after {timeout:g} s; not waiting for it'
            )
            return False
        self._work_lock.release()
        return True


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
        # stop before destroy_node: Jazzy's executor.shutdown does not wait for callbacks
        if node is not None and not node.stop():
            # a callback hangs in the model (a stuck GPU call): Humble's executor.shutdown and
            # the interpreter's exit (which joins the executor's worker threads) would both
            # wait for it forever, so the process leaves without them
            rclpy.try_shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        executor.shutdown(timeout_sec=STOP_TIMEOUT_S)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
