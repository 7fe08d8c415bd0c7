"""The ``dmil-ros`` command: one entry point, one sub-command per tool.

Each sub-command lives in the subpackage that owns it, as a module with two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Modules are imported only when their sub-command runs, so ``dmil-ros --help`` stays fast and
never imports torch or onnxruntime. Errors derived from :class:`dmil_ros.errors.DmilError` are
reported as one line and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from dmil_ros import __version__
from dmil_ros.errors import DmilError
from dmil_ros.log import LEVELS, setup_logging

logger = logging.getLogger('dmil_ros')


class Command(Protocol):
    """What a sub-command module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help). Order is the order ``--help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    'simulate': (
        'dmil_ros.sim.cli',
        'record a simulated camera + LiDAR bag with ground truth',
    ),
    'replay': ('dmil_ros.runtime.cli', 'run the fusion pipeline over a bag, write its outputs'),
    'train': ('dmil_ros.train.cli', 'train DMIL (or a baseline) from rosbag2 recordings'),
    'evaluate': ('dmil_ros.train.evaluate_cli', 'compare ONNX models on labelled bags'),
    'export': ('dmil_ros.train.export_cli', 'export a training run to one ONNX model'),
    'audit': ('dmil_ros.audit.cli', 'PID audit of bags: per frame, per data set, data vs model'),
}


def _available() -> dict[str, tuple[str, str]]:
    """Sub-commands whose module exists in this installation."""
    found = {}
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(module.rsplit('.', 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found[name] = (module, help_)
    return found


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The top-level parser, and which module serves each sub-command."""
    parser = argparse.ArgumentParser(
        prog='dmil-ros',
        description='Interaction-aware camera + LiDAR fusion (DMIL, LSMI, PID) for ROS 2.',
    )
    parser.add_argument('--version', action='version', version=f'dmil-ros {__version__}')
    parser.add_argument(
        '--log-level', choices=LEVELS, default='info', help='logging level (default: info)'
    )
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    modules = {}
    for name, (module, help_) in _available().items():
        command = cast(Command, importlib.import_module(module))
        command.add_arguments(sub.add_parser(name, help=help_, description=help_))
        modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dmil-ros``; returns the process exit code."""
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = cast(Command, importlib.import_module(modules[args.command]))
    try:
        return command.run(args)
    except DmilError as exc:
        logger.error('%s', exc)
        return 2
    except KeyboardInterrupt:
        logger.warning('interrupted')
        return 130


if __name__ == '__main__':
    sys.exit(main())
