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
parallel). The ``~/cmd_vel`` watchdog has a group and a lock of its own: a stuck inference
(a GPU stall) is exactly when it must still send its zero command (review 23c, M2). Timers
run on the steady clock: with ``use_sim_time`` and no ``/clock``, or after the system clock
steps back, diagnostics and the watchdog still fire. The inbox holds ``queue_size`` messages
per sensor and drops a message that waited more than ``silence_timeout`` s: under overload the
node acts on recent frames, not on a backlog (``<sensor>_inbox_full`` / ``<sensor>_stale`` and
the queue wait in the diagnostics).

An error the pipeline does not expect (ONNX Runtime failing, a CUDA error) is counted and logged
for the message that caused it, and so is a diagnostics report that fails; the node keeps
running. Shutdown (Ctrl-C, SIGTERM, launch stopping it) lets a running callback finish and
publishes nothing after but, with ``~/cmd_vel`` on, one zero command: a base without a command
timeout would otherwise keep driving on the last one. rclpy's own signal handlers shut the
context down before any clean-up could publish (review 23c, M1), so the node installs none:
the executor spins on a worker thread and the signals end the main thread's wait. No
traceback on Humble or Jazzy. A callback still running after ``STOP_TIMEOUT_S`` (a hung GPU
call) is not waited for: the zero command is sent and the process exits with code 1.

Start-up fails with one log line naming the file and the problem when the model is missing or
does not follow the model contract. Parameters: :data:`dmil_ros.runtime.params.PARAMS`
(``config/fusion.yaml``); outputs: :mod:`dmil_ros.runtime.outputs`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import ParameterDescriptor  # type: ignore[import-not-found,unused-ignore]
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, LaserScan, PointCloud2

from dmil_ros.errors import DmilError
from dmil_ros.ros.convert import CONVERTERS
from dmil_ros.runtime.diagnostics import DiagnosticsTracker, status_name
from dmil_ros.runtime.inbox import Inbox
from dmil_ros.runtime.outputs import CMD_VEL, DIAGNOSTICS, NODE_NAME, OutputBuilder, StaleCommand
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
ACK_TIMEOUT_S = 0.5  # the longest shutdown waits for subscribers to receive the zero command
LOG_PERIOD_S = 5.0  # errors of one stage are logged at most this often (all are counted)


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
        # DmilError on a bad value; input topics resolved in this namespace, as rcl resolves
        # them (remap rules still apply to the absolute names), so diagnostics name them
        settings = build(values).resolved(self.get_namespace(), self.get_name())
        model = settings.load_model()
        self.pipeline = FusionPipeline(model, settings.pipeline)
        self.builder = OutputBuilder(settings.twists, stamped=settings.cmd_vel_stamped)
        cfg = settings.pipeline
        self.inbox = Inbox(cfg.queue_size, cfg.silence_timeout)
        planar = planar_warning(cfg.lidar_topic, model.spec.beams)
        if settings.points_type == 'laserscan' and planar:
            self.get_logger().warning(planar)
        self.tracker = DiagnosticsTracker(
            self.pipeline,
            inbox=self.inbox,
            start=time.monotonic(),
            name=status_name(self.get_fully_qualified_name()),
        )

        # publishers: every output the model can fill
        self._pubs: dict[str, Any] = {}
        self._convert: dict[str, Any] = {}  # topic -> rosbags-to-rclpy converter
        for topic, msgtype in self.builder.topics().items():
            if topic == '~/gates' and not model.has('gates'):
                continue
            if topic in ('~/interactions', '~/synergy_alert') and self.pipeline.pid_source is None:
                continue
            if topic == CMD_VEL and settings.twists is None:
                continue
            self._pubs[topic] = self.create_publisher(CONVERTERS[msgtype][0], topic, 10)
            self._convert[topic] = CONVERTERS[msgtype][1]

        # intake: cheap callbacks that only queue the message
        self._stopping = threading.Event()
        self._work_lock = threading.Lock()  # held by a running drain / diagnostics callback
        self._command_lock = threading.Lock()  # cmd_vel: a frame's command vs the watchdog's
        self._logged: dict[str, float] = {}  # stage -> when its last error was logged
        intake = MutuallyExclusiveCallbackGroup()
        work = MutuallyExclusiveCallbackGroup()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
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
            settings.diagnostics_period, self._diagnostics, callback_group=work, clock=steady
        )
        # cmd_vel watchdog: one zero Twist when no frame came for silence_timeout, in a group
        # of its own so that a drain stuck in the model does not hold it back
        self._command = StaleCommand(cfg.silence_timeout)
        if CMD_VEL in self._pubs:
            self._watchdog = self.create_timer(
                cfg.silence_timeout / 2,
                self._stop_stale_command,
                callback_group=MutuallyExclusiveCallbackGroup(),
                clock=steady,
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
            if not self._stopping.is_set() and self._context_ok():
                raise
            # the guard condition was destroyed under a callback still running at shutdown,
            # or the context was shut down under it

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
        """Count an error for the diagnostics (``<stage>: <Error>``) and log it, at most once
        per ``LOG_PERIOD_S`` per stage (rclpy throttles per call site: one stage's errors
        would hide every other stage's, review 23c L4)."""
        text = self.pipeline.count_error(stage, exc)
        now = time.monotonic()
        if now - self._logged.get(stage, -LOG_PERIOD_S) >= LOG_PERIOD_S:
            self._logged[stage] = now
            self.get_logger().error(f'{what}: {text}')

    def _publish(self, result: FrameResult) -> None:
        for topic, msg in self.builder.frame(result):
            if topic not in self._pubs:
                continue
            if topic == CMD_VEL:
                with self._command_lock:
                    self._emit(topic, msg)
                    self._command.sent(msg, time.monotonic())
            else:
                self._emit(topic, msg)

    def _emit(self, topic: str, msg: Any) -> None:
        """Publish a core (rosbags) message as its rclpy twin."""
        self._pubs[topic].publish(self._convert[topic](msg))

    def _now_header(self, frame_id: str = '') -> Header:
        """A header stamped now on the node's clock."""
        now = self.get_clock().now().to_msg()
        return Header(int(now.sec), int(now.nanosec), frame_id)

    def _send_zero_command(self) -> None:
        """Publish one zero velocity command (the caller holds ``_command_lock``)."""
        # stamped: now on the node's clock, in the frame of the last command
        zero = self.builder.twist(0.0, 0.0, self._now_header(self._command.frame_id))
        self._emit(CMD_VEL, zero)
        self._command.sent(zero, time.monotonic())

    def _stop_stale_command(self) -> None:
        """Send a zero Twist once when the last non-zero one is older than silence_timeout."""
        with self._command_lock:
            if self._stopping.is_set() or not self._command.due(time.monotonic()):
                return
            try:
                self._send_zero_command()
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
                self._emit(DIAGNOSTICS, self.builder.diagnostics(self._now_header(), statuses))
            except Exception as exc:
                if not self._context_ok():
                    return  # the context was shut down under us (Ctrl-C on Humble)
                # counted and logged like a frame's publish error: an exception out of a timer
                # callback would end executor.spin() and the node with it
                self._count_error('diagnostics', exc, 'diagnostics not published')

    def _context_ok(self) -> bool:
        context = getattr(self, 'context', None)
        return context is None or bool(context.ok())

    def halt_base(self) -> None:
        """At shutdown, after :meth:`stop`: one zero command on ``~/cmd_vel`` (when published),
        waiting up to ``ACK_TIMEOUT_S`` for reliable subscribers to have it."""
        pub = self._pubs.get(CMD_VEL)
        if pub is None or not self._context_ok():
            return
        # bounded: a watchdog callback holding the lock is quick, a stuck one must not hang us
        if not self._command_lock.acquire(timeout=ACK_TIMEOUT_S):
            return
        try:
            self._send_zero_command()
        except Exception as exc:  # shutting down: say it, go on stopping
            self.get_logger().error(f'shutdown: zero cmd_vel not published: {exc!r}')
            return
        finally:
            self._command_lock.release()
        acked = getattr(pub, 'wait_for_all_acked', None)
        if acked is not None:
            from rclpy.duration import Duration

            acked(Duration(nanoseconds=int(ACK_TIMEOUT_S * 1e9)))
        self.get_logger().info('shutdown: zero cmd_vel sent')

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


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM (launch escalating, systemd, ``kill``) stops the node as Ctrl-C does."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _spin(executor: Any) -> None:
    with contextlib.suppress(ExternalShutdownException):  # the context was shut down elsewhere
        executor.spin()


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run dmil_ros fusion_node`` and the launch file."""
    # no rclpy signal handlers: they would shut the context down before the zero cmd_vel below
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    node = None
    executor = MultiThreadedExecutor(num_threads=3)
    try:
        try:
            node = FusionNode()
        except STARTUP_ERRORS:  # logged by the node, one line
            sys.exit(1)
        executor.add_node(node)
        # the executor waits in rcl, where a Python signal handler cannot run; this thread
        # waits in a join a signal interrupts at once
        spinner = threading.Thread(target=_spin, args=(executor,), name='executor', daemon=True)
        spinner.start()
        while spinner.is_alive():
            spinner.join(timeout=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        # stop before destroy_node: Jazzy's executor.shutdown does not wait for callbacks
        stopped = node is None or node.stop()
        if node is not None:
            node.halt_base()
        if not stopped:
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
