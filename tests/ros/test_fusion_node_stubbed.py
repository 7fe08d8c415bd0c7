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

"""The rclpy adapter's logic, run against stand-in rclpy / message modules (no ROS here).

The launch_testing smoke test covers the real middleware where ROS 2 is installed; this test
makes sure the node's own code (parameters, intake, draining, publishing, diagnostics, start-up
failure) runs everywhere.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.ros.stubs import message_module
from tests.runtime.contract_models import build_model
from tests.runtime.messages import flat_image, vlp16


class FakePub:
    def __init__(self, cls: type, topic: str) -> None:
        self.cls, self.topic, self.sent = cls, topic, []

    def publish(self, msg: Any) -> None:
        assert isinstance(msg, self.cls)
        self.sent.append(msg)


class ParameterError(Exception):
    """rclpy.exceptions.ParameterException's stand-in."""


class InvalidParameterTypeError(ParameterError):
    """rclpy.exceptions.InvalidParameterTypeException's stand-in (a ParameterException)."""


class NameValidationError(Exception):
    """rclpy.exceptions.NameValidationException's stand-in."""


class FakeNode:
    overrides: ClassVar[dict[str, Any]] = {}
    fatal: ClassVar[list[str]] = []
    destroyed: ClassVar[list[str]] = []
    instances: ClassVar[list[Any]] = []

    def __init__(self, name: str, **_: Any) -> None:
        self.instances.append(self)
        self.name = name
        self.params: dict[str, Any] = {}
        self.descriptors: dict[str, Any] = {}
        self.pubs: dict[str, FakePub] = {}
        self.subs: dict[str, tuple[type, Any, Any, Any]] = {}
        self.guards: list[Any] = []
        self.timers: list[Any] = []
        self.logged: list[str] = []

    def declare_parameter(self, name: str, value: Any, descriptor: Any) -> None:
        # rclpy types a parameter from its default and refuses an override of another type
        override = self.overrides.get(name, value)
        if type(override) is not type(value):
            msg = f"Trying to set parameter '{name}' to '{override}', expecting {type(value)}"
            raise InvalidParameterTypeError(msg)
        self.params[name] = override
        self.descriptors[name] = descriptor

    def get_parameter(self, name: str) -> Any:
        return types.SimpleNamespace(value=self.params[name])

    def create_publisher(self, cls: type, topic: str, qos: Any) -> FakePub:
        self.pubs[topic] = FakePub(cls, topic)
        return self.pubs[topic]

    def create_subscription(
        self, cls: type, topic: str, cb: Any, qos: Any, callback_group: Any = None
    ) -> Any:
        self.subs[topic] = (cls, cb, qos, callback_group)
        return object()

    def create_guard_condition(self, cb: Any, callback_group: Any = None) -> Any:
        guard = types.SimpleNamespace(cb=cb, group=callback_group, triggered=0)
        guard.trigger = lambda: setattr(guard, 'triggered', guard.triggered + 1)
        self.guards.append(guard)
        return guard

    def create_timer(
        self, period: float, cb: Any, callback_group: Any = None, clock: Any = None
    ) -> Any:
        timer = types.SimpleNamespace(period=period, cb=cb, group=callback_group, clock=clock)
        self.timers.append(timer)
        return timer

    def get_logger(self) -> Any:
        return types.SimpleNamespace(
            info=self.logged.append,
            fatal=self.fatal.append,
            error=lambda text, **_: self.logged.append(f'ERROR {text}'),
            warning=lambda text, **_: self.logged.append(f'WARNING {text}'),
        )

    def get_clock(self) -> Any:
        now = types.SimpleNamespace(to_msg=lambda: types.SimpleNamespace(sec=5, nanosec=6))
        return types.SimpleNamespace(now=lambda: now)

    def get_namespace(self) -> str:
        return '/'  # rclpy's root namespace

    def get_name(self) -> str:
        return self.name

    def get_fully_qualified_name(self) -> str:
        return f'/{self.name}'

    def destroy_node(self) -> None:
        self.destroyed.append(self.name)


@pytest.fixture
def node_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    FakeNode.fatal = []
    FakeNode.destroyed = []
    FakeNode.instances = []
    rclpy = types.ModuleType('rclpy')
    rclpy.inits = []  # type: ignore[attr-defined]
    rclpy.init = lambda args=None, **kw: rclpy.inits.append(kw)  # type: ignore[attr-defined]
    rclpy.try_shutdown = lambda: None  # type: ignore[attr-defined]
    exceptions = types.ModuleType('rclpy.exceptions')
    exceptions.ParameterException = ParameterError  # type: ignore[attr-defined]
    exceptions.InvalidParameterTypeException = (  # type: ignore[attr-defined]
        InvalidParameterTypeError
    )
    exceptions.NameValidationException = NameValidationError  # type: ignore[attr-defined]
    rclpy.exceptions = exceptions  # type: ignore[attr-defined]
    executors = types.ModuleType('rclpy.executors')

    class ExternalShutdownException(Exception):  # noqa: N818
        pass

    class Executor:
        shutdowns: ClassVar[list[float | None]] = []  # timeout_sec of each shutdown() call

        def __init__(self, num_threads: int = 1) -> None:
            self.nodes: list[Any] = []

        def add_node(self, node: Any) -> None:
            self.nodes.append(node)

        def spin(self) -> None:
            raise ExternalShutdownException

        def shutdown(self, timeout_sec: float | None = None) -> bool:
            Executor.shutdowns.append(timeout_sec)
            return True

    executors.MultiThreadedExecutor = Executor  # type: ignore[attr-defined]
    executors.ExternalShutdownException = ExternalShutdownException  # type: ignore[attr-defined]
    modules = {
        'rclpy': rclpy,
        'rclpy.exceptions': exceptions,
        'rclpy.node': types.SimpleNamespace(Node=FakeNode),
        'rclpy.qos': types.SimpleNamespace(qos_profile_sensor_data='sensor_data'),
        'rclpy.callback_groups': types.SimpleNamespace(MutuallyExclusiveCallbackGroup=object),
        'rclpy.clock': types.SimpleNamespace(
            Clock=lambda clock_type: types.SimpleNamespace(clock_type=clock_type),
            ClockType=types.SimpleNamespace(STEADY_TIME='steady', ROS_TIME='ros'),
        ),
        'rclpy.signals': types.SimpleNamespace(
            SignalHandlerOptions=types.SimpleNamespace(NO='no', ALL='all')
        ),
        'rclpy.executors': executors,
        'rcl_interfaces.msg': message_module('ParameterDescriptor'),
        'sensor_msgs.msg': message_module(
            'Image', 'CompressedImage', 'PointCloud2', 'LaserScan', 'JointState'
        ),
        'diagnostic_msgs.msg': message_module('DiagnosticArray', 'DiagnosticStatus', 'KeyValue'),
        'geometry_msgs.msg': message_module('Twist', 'TwistStamped', 'Vector3'),
        'std_msgs.msg': message_module('Header'),
        'builtin_interfaces.msg': message_module('Time'),
    }
    for name, mod in modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ('dmil_ros.ros.fusion_node', 'dmil_ros.ros.convert'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module('dmil_ros.ros.fusion_node')
    yield module
    for name in ('dmil_ros.ros.fusion_node', 'dmil_ros.ros.convert'):
        sys.modules.pop(name, None)


def _started(node_module: Any, tmp_path: Path) -> tuple[Any, Any, Any]:
    """A node on a contract model (CPU), with its camera and LiDAR subscription callbacks."""
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    node = node_module.FusionNode()
    return node, node.subs['/camera/image_raw'][1], node.subs['/lidar/points'][1]


def test_node_pipeline_and_publishing(node_module: Any, tmp_path: Path) -> None:
    model = build_model(tmp_path / 'm.onnx')
    FakeNode.overrides = {'model_path': str(model), 'provider': 'cpu', 'publish_cmd_vel': True}
    node = node_module.FusionNode()
    assert node.descriptors['provider'].read_only is True
    assert 'one of auto' in node.descriptors['provider'].additional_constraints
    assert set(node.pubs) == {
        '~/action',
        '~/action_probs',
        '~/gates',
        '~/interactions',
        '~/synergy_alert',
        '/diagnostics',
        '~/cmd_vel',
    }
    _, cam_cb, qos, intake = node.subs['/camera/image_raw']
    _, lid_cb, _, intake2 = node.subs['/lidar/points']
    assert qos == 'sensor_data'
    assert intake is intake2
    guard = node.guards[0]
    assert guard.group is not intake  # inference runs in its own callback group
    assert node.timers[0].group is guard.group
    stamps = []
    for k in range(20):
        t = 1_000_000_000 + k * 50_000_000
        stamps.append(t)
        cam_cb(flat_image(t, 100))
        if k % 2 == 0:
            lid_cb(vlp16(t + 7_000_000))
    assert guard.triggered == 30
    guard.cb()  # the executor would run this in the work group
    probs = node.pubs['~/action_probs'].sent
    assert len(probs) == 19
    for msg in probs:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp in stamps
        assert msg.header.frame_id == 'camera_optical_frame'
        assert isinstance(msg.position, list)
        assert abs(sum(msg.position) - 1) < 1e-5
        assert msg.name == ['forward', 'left', 'right', 'stop']
    assert len(node.pubs['~/cmd_vel'].sent) == 19
    # diagnostics: level as a one-byte bytes, the provider reported
    node.timers[0].cb()
    diag = node.pubs['/diagnostics'].sent[-1]
    status = diag.status[0]
    assert isinstance(status.level, bytes)
    assert len(status.level) == 1
    values = {kv.key: kv.value for kv in status.values}
    assert values['provider'] == 'cpu'
    assert values['frames'] == '19'


def test_node_inbox_bounded(node_module: Any, tmp_path: Path) -> None:
    FakeNode.overrides = {
        'model_path': str(build_model(tmp_path / 'm.onnx')),
        'provider': 'cpu',
        'queue_size': 2,
    }
    node = node_module.FusionNode()
    _, cam_cb, _, _ = node.subs['/camera/image_raw']
    _, lid_cb, _, _ = node.subs['/lidar/points']
    for k in range(20):
        cam_cb(flat_image(k * 50_000_000, 100))
    lid_cb(vlp16(10 * 50_000_000))
    # the inbox holds queue_size messages per sensor: the camera's flood kept the sweep
    assert node.inbox.drops == {'camera_inbox_full': 18}
    assert len(node.inbox) == 3
    node.timers[0].cb()
    status = node.pubs['/diagnostics'].sent[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values['drop: camera_inbox_full'] == '18'
    assert status.level == bytes([1])  # WARN: messages dropped since the last report


def test_node_drops_frames_that_waited_too_long(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # inference fell behind: frames older than silence_timeout are not acted on
    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    clock = [100.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    for k in range(4):  # received at 100.0 s
        cam_cb(flat_image(1_000_000_000 + k * 50_000_000, 100))
    clock[0] = 100.6  # 0.6 s later (silence_timeout 0.5 s)
    lid_cb(vlp16(1_157_000_000))
    node.guards[0].cb()
    assert node.inbox.drops == {'camera_stale': 4}
    assert node.pubs['~/action_probs'].sent == []  # the sweep alone pairs with nothing
    node.timers[0].cb()
    values = {kv.key: kv.value for kv in node.pubs['/diagnostics'].sent[-1].status[0].values}
    assert values['drop: camera_stale'] == '4'
    assert float(values['queue wait p99 (ms)']) == pytest.approx(0.0)


def test_an_unexpected_inference_error_skips_the_frame_not_the_node(
    node_module: Any, tmp_path: Path
) -> None:
    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    infer = node.pipeline.infer
    failed: list[int] = []

    def flaky(jobs: list) -> list:
        if jobs and not failed:  # the first frame pair
            failed.append(1)
            msg = 'CUDA error: out of memory'
            raise RuntimeError(msg)
        return infer(jobs)

    node.pipeline.infer = flaky
    cam_cb(flat_image(1_000_000_000, 100))
    lid_cb(vlp16(1_007_000_000))  # completes the first pair: its inference fails
    cam_cb(flat_image(1_050_000_000, 100))
    cam_cb(flat_image(1_100_000_000, 100))
    lid_cb(vlp16(1_107_000_000))
    node.guards[0].cb()
    assert node.pipeline.errors[('model', 'RuntimeError')] == 1
    assert any('CUDA error' in line for line in node.logged)
    assert len(node.pubs['~/action_probs'].sent) == 2  # the frames after it still published


def test_stop_lets_nothing_run_after_it(node_module: Any, tmp_path: Path) -> None:
    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    cam_cb(flat_image(1_000_000_000, 100))
    lid_cb(vlp16(1_007_000_000))
    node.stop()
    node.guards[0].cb()  # a callback the executor had already scheduled
    node.timers[0].cb()
    assert node.pubs['~/action_probs'].sent == []
    assert node.pubs['/diagnostics'].sent == []


def test_publishing_into_a_shut_down_context_is_quiet(node_module: Any, tmp_path: Path) -> None:
    # Humble's SIGINT handler shuts the context down from another thread, mid-callback
    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    node.context = types.SimpleNamespace(ok=lambda: False)

    def invalid(_: Any) -> None:
        msg = 'publisher context is invalid'
        raise RuntimeError(msg)

    for pub in node.pubs.values():
        pub.publish = invalid
    cam_cb(flat_image(1_000_000_000, 100))
    lid_cb(vlp16(1_007_000_000))
    node.guards[0].cb()  # no exception
    node.timers[0].cb()
    assert not node.pipeline.errors  # not counted as a model error either


def test_missing_model_stops_startup(node_module: Any, tmp_path: Path) -> None:
    FakeNode.overrides = {'model_path': str(tmp_path / 'absent.onnx')}
    with pytest.raises(SystemExit) as info:
        node_module.main([])
    assert info.value.code == 1
    (line,) = FakeNode.fatal
    assert 'absent.onnx' in line
    assert 'no such file' in line
    assert FakeNode.destroyed == ['fusion_node']  # the half-built node is not left behind


def test_wrong_parameter_type_stops_startup(node_module: Any, tmp_path: Path) -> None:
    # `slop: 1` in a YAML file: rclpy refuses an integer for the float parameter
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'slop': 1}
    with pytest.raises(SystemExit) as info:
        node_module.main([])
    assert info.value.code == 1
    (line,) = FakeNode.fatal
    assert line.startswith('cannot start: ')
    assert "'slop'" in line
    assert FakeNode.destroyed == ['fusion_node']


def test_drain_takes_only_what_is_queued(node_module: Any, tmp_path: Path) -> None:
    """A drain returns even while input keeps coming, so the timer of its group gets a turn."""
    node, cam_cb, _ = _started(node_module, tmp_path)
    guard = node.guards[0]
    for k in range(3):
        cam_cb(flat_image(k * 50_000_000, 100))
    feed = node.pipeline.feed_camera
    fed: list[int] = []

    def feed_and_receive(msg: Any) -> Any:  # new images arrive while the first ones are processed
        fed.append(1)
        if len(fed) <= 5:
            cam_cb(flat_image((10 + len(fed)) * 50_000_000, 100))
        return feed(msg)

    node.pipeline.feed_camera = feed_and_receive
    triggered = guard.triggered
    guard.cb()
    assert len(fed) == 3  # the three queued before the drain, not the ones that came meanwhile
    assert len(node.inbox) == 3  # ...which stay queued for the next call,
    assert guard.triggered == triggered + 3  # which their arrival triggered


def test_clean_shutdown_on_external_shutdown(node_module: Any, tmp_path: Path) -> None:
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    executor = node_module.MultiThreadedExecutor
    executor.shutdowns.clear()
    node_module.main([])  # the stand-in executor raises ExternalShutdownException at once
    # bounded: Humble's shutdown() waits for running callbacks, by default forever
    assert executor.shutdowns == [node_module.STOP_TIMEOUT_S]


def test_a_hung_inference_does_not_hang_the_process_exit(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() gives up on a stuck callback; the executor's shutdown and the interpreter's exit
    would still wait for it (rclpy humble Executor.shutdown; concurrent.futures joins its
    threads at exit), so main leaves with os._exit(1) before either."""
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    monkeypatch.setattr(node_module.FusionNode, 'stop', lambda self, timeout=0.0: False)

    class Exit(BaseException):
        pass

    codes: list[int] = []

    def exit_(code: int) -> None:
        codes.append(code)
        raise Exit

    monkeypatch.setattr(node_module.os, '_exit', exit_)
    executor = node_module.MultiThreadedExecutor
    executor.shutdowns.clear()
    with pytest.raises(Exit):
        node_module.main([])
    assert codes == [1]
    assert executor.shutdowns == []  # never reached


def test_stop_waits_for_a_running_inference_then_nothing_runs(
    node_module: Any, tmp_path: Path
) -> None:
    import threading
    import time

    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    infer = node.pipeline.infer
    started = threading.Event()

    def slow(jobs: list) -> list:
        if jobs:
            started.set()
            time.sleep(0.3)
        return infer(jobs)

    node.pipeline.infer = slow
    cam_cb(flat_image(1_000_000_000, 100))
    lid_cb(vlp16(1_007_000_000))
    cam_cb(flat_image(1_050_000_000, 100))
    worker = threading.Thread(target=node.guards[0].cb)  # the executor's work thread
    worker.start()
    assert started.wait(5)
    t0 = time.perf_counter()
    assert node.stop() is True
    waited = time.perf_counter() - t0
    worker.join()
    assert waited > 0.1  # it waited for the running inference...
    assert len(node.pubs['~/action_probs'].sent) == 1  # ...which published; nothing after
    queued = len(node.inbox)  # the frame after the pair: not processed once stopping
    cam_cb(flat_image(1_100_000_000, 100))  # a sensor callback still running at shutdown
    assert len(node.inbox) == queued


def test_stop_gives_up_on_a_hung_inference(node_module: Any, tmp_path: Path) -> None:
    node, _, _ = _started(node_module, tmp_path)
    node._work_lock.acquire()  # a callback stuck in a GPU call
    try:
        assert node.stop(timeout=0.05) is False
    finally:
        node._work_lock.release()
    assert any('not waiting' in line for line in node.logged)


def test_a_publish_error_in_a_live_context_is_counted_for_diagnostics(
    node_module: Any, tmp_path: Path
) -> None:
    """Counted and logged, not raised: an exception out of a timer callback comes back out of
    executor.spin() (rclpy's Task keeps it, the executor re-raises it) and ends the node."""
    node, cam_cb, lid_cb = _started(node_module, tmp_path)
    node.context = types.SimpleNamespace(ok=lambda: True)

    def broken(_: Any) -> None:
        msg = 'converter bug'
        raise TypeError(msg)

    node.pubs['/diagnostics'].publish = broken
    node.timers[0].cb()
    node.timers[0].cb()
    assert node.pipeline.errors[('diagnostics', 'TypeError')] == 2
    assert any('diagnostics not published' in line for line in node.logged)
    node.pubs['~/action_probs'].publish = broken
    cam_cb(flat_image(1_000_000_000, 100))
    lid_cb(vlp16(1_007_000_000))
    node.guards[0].cb()
    assert node.pipeline.errors[('publish', 'TypeError')] == 1  # counted apart from the model's
    assert ('model', 'TypeError') not in node.pipeline.errors


@pytest.mark.parametrize('points_type', ['laserscan', 'pointcloud2'])
def test_a_laserscan_input_is_a_start_up_warning(
    node_module: Any, tmp_path: Path, points_type: str
) -> None:
    FakeNode.overrides = {
        'model_path': str(build_model(tmp_path / 'm.onnx')),
        'provider': 'cpu',
        'points_type': points_type,
    }
    node = node_module.FusionNode()
    warned = [t for t in node.logged if 'a LaserScan fills 1 of the' in t]
    assert len(warned) == (points_type == 'laserscan'), node.logged


def test_a_stale_velocity_command_is_zeroed_once(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twist has no stamp: when frames stop, a base keeps the last command until its own
    timeout. The node sends one zero Twist once no frame came for silence_timeout."""
    model = build_model(tmp_path / 'm.onnx')
    FakeNode.overrides = {'model_path': str(model), 'provider': 'cpu', 'publish_cmd_vel': True}
    node = node_module.FusionNode()
    (watchdog,) = [t for t in node.timers if t.cb == node._stop_stale_command]
    assert watchdog.period == pytest.approx(0.25)  # silence_timeout / 2
    sent = node.pubs['~/cmd_vel'].sent
    clock = [100.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    forward = node.builder.twist(0.3, 0.0)
    monkeypatch.setattr(node.builder, 'frame', lambda _result: [('~/cmd_vel', forward)])
    node._publish(None)  # a frame's non-zero command
    assert len(sent) == 1
    clock[0] = 100.4  # within silence_timeout (0.5 s): the command stands
    watchdog.cb()
    assert len(sent) == 1
    clock[0] = 100.6  # no frame for longer: one zero command
    watchdog.cb()
    assert len(sent) == 2
    assert (sent[-1].linear.x, sent[-1].angular.z) == (0.0, 0.0)
    clock[0] = 101.6
    watchdog.cb()
    assert len(sent) == 2  # once
    assert any('zero cmd_vel sent' in line for line in node.logged)


def test_no_watchdog_without_the_twist_output(node_module: Any, tmp_path: Path) -> None:
    node, _, _ = _started(node_module, tmp_path)
    assert '~/cmd_vel' not in node.pubs
    assert len(node.timers) == 1  # diagnostics only


def _twist_node(node_module: Any, tmp_path: Path) -> Any:
    model = build_model(tmp_path / 'm.onnx')
    FakeNode.overrides = {'model_path': str(model), 'provider': 'cpu', 'publish_cmd_vel': True}
    return node_module.FusionNode()


def test_the_watchdog_zeroes_the_command_while_inference_is_stuck(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drain stuck in the model holds the work group and its lock: the watchdog has a group
    and a lock of its own, so it still sends its zero (review 23c, M2)."""
    import threading

    node = _twist_node(node_module, tmp_path)
    (watchdog,) = [t for t in node.timers if t.cb == node._stop_stale_command]
    assert watchdog.group is not node.guards[0].group
    clock = [100.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    forward = node.builder.twist(0.3, 0.0)
    monkeypatch.setattr(node.builder, 'frame', lambda _result: [('~/cmd_vel', forward)])
    node._publish(None)
    clock[0] = 101.0
    with node._work_lock:  # a drain inside a stuck model call
        runner = threading.Thread(target=watchdog.cb, daemon=True)
        runner.start()
        runner.join(2.0)
        assert not runner.is_alive()
    sent = node.pubs['~/cmd_vel'].sent
    assert (sent[-1].linear.x, sent[-1].angular.z) == (0.0, 0.0)


def test_timers_run_on_the_steady_clock(node_module: Any, tmp_path: Path) -> None:
    """With use_sim_time and no /clock, ROS-time timers never fire (review 23c, L1)."""
    node = _twist_node(node_module, tmp_path)
    assert len(node.timers) == 2
    assert all(t.clock.clock_type == 'steady' for t in node.timers)


def test_shutdown_sends_one_zero_command_after_the_last_frame(
    node_module: Any, tmp_path: Path
) -> None:
    """rclpy's signal handlers would shut the context down first: main installs none and
    publishes one zero command once the callbacks have stopped (review 23c, M1)."""
    FakeNode.overrides = {
        'model_path': str(build_model(tmp_path / 'm.onnx')),
        'provider': 'cpu',
        'publish_cmd_vel': True,
    }
    node_module.main([])  # the stand-in executor raises ExternalShutdownException at once
    assert node_module.rclpy.inits == [{'signal_handler_options': 'no'}]
    (node,) = FakeNode.instances
    sent = node.pubs['~/cmd_vel'].sent
    assert len(sent) == 1
    assert (sent[0].linear.x, sent[0].angular.z) == (0.0, 0.0)
    assert node._stopping.is_set()  # after stop(): no frame command can follow it
    assert 'shutdown: zero cmd_vel sent' in node.logged


def test_no_zero_command_without_the_twist_output(node_module: Any, tmp_path: Path) -> None:
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    node_module.main([])
    (node,) = FakeNode.instances
    assert '~/cmd_vel' not in node.pubs
    assert not any('zero cmd_vel' in line for line in node.logged)


@pytest.mark.parametrize('signum', ['SIGINT', 'SIGTERM'])
def test_a_signal_stops_the_spinning_node_and_zeroes_the_command(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: str
) -> None:
    """The executor spins on a worker thread (it waits in rcl, where no Python signal handler
    runs); Ctrl-C or SIGTERM ends the main thread's wait at once, then the node stops."""
    import os
    import signal
    import threading

    FakeNode.overrides = {
        'model_path': str(build_model(tmp_path / 'm.onnx')),
        'provider': 'cpu',
        'publish_cmd_vel': True,
    }
    released = threading.Event()
    executor = node_module.MultiThreadedExecutor
    executor.shutdowns.clear()

    def spin(self: Any) -> None:
        released.wait(10.0)  # as rcl's wait: no signal handler runs on this thread

    monkeypatch.setattr(executor, 'spin', spin)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), getattr(signal, signum)))
    timer.start()
    try:
        node_module.main([])
    finally:
        released.set()
        timer.cancel()
    (node,) = FakeNode.instances
    assert executor.shutdowns == [node_module.STOP_TIMEOUT_S]
    assert [(m.linear.x, m.angular.z) for m in node.pubs['~/cmd_vel'].sent] == [(0.0, 0.0)]
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_errors_of_one_stage_do_not_hide_another_stage_in_the_log(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclpy throttles per call site: one site for every stage let a per-frame model error
    silence the publish and diagnostics errors (review 23c, L4). Each stage is logged at most
    once per LOG_PERIOD_S, every error counted."""
    node, _, _ = _started(node_module, tmp_path)
    clock = [10.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    node._count_error('model', RuntimeError('a'), 'frame skipped')
    node._count_error('model', RuntimeError('b'), 'frame skipped')  # within the period
    node._count_error('publish', TypeError('c'), 'frame skipped')
    errors = [line for line in node.logged if line.startswith('ERROR')]
    assert len(errors) == 2
    assert 'model' in errors[0]
    assert 'publish' in errors[1]
    clock[0] += node_module.LOG_PERIOD_S
    node._count_error('model', RuntimeError('d'), 'frame skipped')
    assert len([line for line in node.logged if line.startswith('ERROR')]) == 3
    assert node.pipeline.errors[('model', 'RuntimeError')] == 3


def test_a_stamped_command_carries_the_frame_header_and_the_zero_one_its_frame(
    node_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cmd_vel_stamped: a TwistStamped publisher; each frame's command has the camera frame's
    header; the watchdog's zero command is stamped now, in the last command's frame."""
    model = build_model(tmp_path / 'm.onnx')
    FakeNode.overrides = {
        'model_path': str(model),
        'provider': 'cpu',
        'publish_cmd_vel': True,
        'cmd_vel_stamped': True,
    }
    node = node_module.FusionNode()
    pub = node.pubs['~/cmd_vel']
    assert pub.cls.__name__ == 'TwistStamped'
    _, cam_cb, _, _ = node.subs['/camera/image_raw']
    _, lid_cb, _, _ = node.subs['/lidar/points']
    for k in range(4):
        t = 1_000_000_000 + k * 50_000_000
        cam_cb(flat_image(t, 100))
        if k % 2 == 0:
            lid_cb(vlp16(t + 7_000_000))
    node.guards[0].cb()
    probs = node.pubs['~/action_probs'].sent
    assert len(pub.sent) == len(probs) == 3
    for cmd, p in zip(pub.sent, probs, strict=True):
        assert (cmd.header.stamp.sec, cmd.header.stamp.nanosec) == (
            p.header.stamp.sec,
            p.header.stamp.nanosec,
        )
        assert cmd.header.frame_id == 'camera_optical_frame'
    forward = node.builder.twist(0.3, 0.0, node_module.Header(1, 2, 'camera_optical_frame'))
    monkeypatch.setattr(node.builder, 'frame', lambda _result: [('~/cmd_vel', forward)])
    clock = [100.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    node._publish(None)
    clock[0] = 100.6
    (watchdog,) = [t for t in node.timers if t.cb == node._stop_stale_command]
    watchdog.cb()
    zero = pub.sent[-1]
    assert (zero.twist.linear.x, zero.twist.angular.z) == (0.0, 0.0)
    assert (zero.header.stamp.sec, zero.header.stamp.nanosec) == (5, 6)  # the node's clock
    assert zero.header.frame_id == 'camera_optical_frame'
