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

from tests.runtime.contract_models import build_model
from tests.runtime.messages import flat_image, vlp16


class Msg:
    """A message stand-in: keyword fields become attributes."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


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


class FakeNode:
    overrides: ClassVar[dict[str, Any]] = {}
    fatal: ClassVar[list[str]] = []
    destroyed: ClassVar[list[str]] = []

    def __init__(self, name: str, **_: Any) -> None:
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

    def create_timer(self, period: float, cb: Any, callback_group: Any = None) -> Any:
        timer = types.SimpleNamespace(period=period, cb=cb, group=callback_group)
        self.timers.append(timer)
        return timer

    def get_logger(self) -> Any:
        return types.SimpleNamespace(info=self.logged.append, fatal=self.fatal.append)

    def get_clock(self) -> Any:
        now = types.SimpleNamespace(to_msg=lambda: types.SimpleNamespace(sec=5, nanosec=6))
        return types.SimpleNamespace(now=lambda: now)

    def destroy_node(self) -> None:
        self.destroyed.append(self.name)


def message_module(*names: str) -> types.ModuleType:
    mod = types.ModuleType('msg')
    for n in names:
        setattr(mod, n, type(n, (Msg,), {}))
    return mod


@pytest.fixture
def node_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    FakeNode.fatal = []
    FakeNode.destroyed = []
    rclpy = types.ModuleType('rclpy')
    rclpy.init = lambda args=None: None  # type: ignore[attr-defined]
    rclpy.try_shutdown = lambda: None  # type: ignore[attr-defined]
    exceptions = types.ModuleType('rclpy.exceptions')
    exceptions.ParameterException = ParameterError  # type: ignore[attr-defined]
    exceptions.InvalidParameterTypeException = InvalidParameterTypeError  # type: ignore[attr-defined]
    rclpy.exceptions = exceptions  # type: ignore[attr-defined]
    executors = types.ModuleType('rclpy.executors')

    class ExternalShutdownException(Exception):  # noqa: N818
        pass

    class Executor:
        def __init__(self, num_threads: int = 1) -> None:
            self.nodes: list[Any] = []

        def add_node(self, node: Any) -> None:
            self.nodes.append(node)

        def spin(self) -> None:
            raise ExternalShutdownException

        def shutdown(self) -> None:
            pass

    executors.MultiThreadedExecutor = Executor  # type: ignore[attr-defined]
    executors.ExternalShutdownException = ExternalShutdownException  # type: ignore[attr-defined]
    modules = {
        'rclpy': rclpy,
        'rclpy.exceptions': exceptions,
        'rclpy.node': types.SimpleNamespace(Node=FakeNode),
        'rclpy.qos': types.SimpleNamespace(qos_profile_sensor_data='sensor_data'),
        'rclpy.callback_groups': types.SimpleNamespace(MutuallyExclusiveCallbackGroup=object),
        'rclpy.executors': executors,
        'rcl_interfaces.msg': message_module('ParameterDescriptor'),
        'sensor_msgs.msg': message_module(
            'Image', 'CompressedImage', 'PointCloud2', 'LaserScan', 'JointState'
        ),
        'diagnostic_msgs.msg': message_module('DiagnosticArray', 'DiagnosticStatus', 'KeyValue'),
        'geometry_msgs.msg': message_module('Twist', 'Vector3'),
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
        'diagnostics',
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
    diag = node.pubs['diagnostics'].sent[-1]
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
    for k in range(20):
        cam_cb(flat_image(k * 50_000_000, 100))
    assert node.inbox_drops == 12  # inbox holds 4 x queue_size
    node.timers[0].cb()
    status = node.pubs['diagnostics'].sent[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values['drop: inbox_full'] == '12'


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
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    node = node_module.FusionNode()
    _, cam_cb, _, _ = node.subs['/camera/image_raw']
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
    assert len(node._inbox) == 3  # ...which stay queued for the next call,
    assert guard.triggered == triggered + 3  # which their arrival triggered


def test_clean_shutdown_on_external_shutdown(node_module: Any, tmp_path: Path) -> None:
    FakeNode.overrides = {'model_path': str(build_model(tmp_path / 'm.onnx')), 'provider': 'cpu'}
    node_module.main([])  # the stand-in executor raises ExternalShutdownException at once
