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

"""The ``dmil-ros`` command: one entry point, one sub-command per tool.

Each sub-command lives in the subpackage that owns it, as a module with two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Modules are imported only when their sub-command runs, so ``dmil-ros --help`` stays fast and
never imports torch or onnxruntime. Errors derived from :class:`dmil_ros.errors.DmilError` are
reported as one line and exit code 2, and so is an ``OSError`` (a path the system refused: no
permission, a full disk; the commands check their paths first, see :mod:`dmil_ros.paths`);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, Protocol, cast

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


TRAIN_ONLY = frozenset({'torch', 'onnx', 'onnxscript', 'tensorboard'})
"""Modules of the ``train`` extra (setup.py): training and export need them, nothing else does."""


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word after the global options), if any."""
    words = iter(argv)
    for word in words:
        if word == '--log-level':
            next(words, None)
        elif not word.startswith('-'):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] = ()) -> tuple[argparse.ArgumentParser, str | None]:
    """The top-level parser and the module of the sub-command ``argv`` names.

    Only that sub-command's module is imported (to add its arguments): ``dmil-ros --help`` and
    ``--version`` import none, and no sub-command pays for another's imports.
    """
    parser = argparse.ArgumentParser(
        prog='dmil-ros',
        description='Interaction-aware camera + LiDAR fusion (DMIL, LSMI, PID) for ROS 2.',
        allow_abbrev=False,  # '--log debug' would parse, but hide the sub-command's arguments
    )
    parser.add_argument('--version', action='version', version=f'dmil-ros {__version__}')
    parser.add_argument(
        '--log-level', choices=LEVELS, default='info', help='logging level (default: info)'
    )
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    chosen = _command_in(argv)
    for name, (module, help_) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            cast(Command, importlib.import_module(module)).add_arguments(command_parser)
    return parser, COMMANDS[chosen][0] if chosen else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dmil-ros``; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command is None or module is None:
        parser.print_help(sys.stderr)
        return 2
    command = cast(Command, importlib.import_module(module))
    previous = _stop_on_sigterm()
    try:
        return command.run(args)
    except (DmilError, OSError) as exc:  # an OSError's text names the file
        logger.error('%s', exc)
        return 2
    except ModuleNotFoundError as exc:
        missing = (exc.name or '').split('.')[0]
        if missing not in TRAIN_ONLY:
            raise
        logger.error(
            '%s: needs %r, which the runtime install leaves out; install the train extra '
            "(pip install '.[train]' in the checkout, or bash scripts/setup.sh --dev)",
            args.command,
            missing,
        )
        return 2
    except KeyboardInterrupt:
        logger.warning('interrupted')
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm() -> Any:
    """SIGTERM (``timeout``, systemd, a CI cancel) stops a command as Ctrl-C does: what is
    finished is kept and worker processes are stopped, not left running without a parent.
    Returns the handler it replaced (None off the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == '__main__':
    sys.exit(main())
