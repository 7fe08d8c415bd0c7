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

"""The ``dmil-ros`` command line: help, version, log level, errors, and light start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dmil_ros import __version__
from dmil_ros.cli import COMMANDS, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-m', 'dmil_ros', *args], capture_output=True, text=True, check=False
    )


def test_version() -> None:
    result = run('--version')
    assert result.returncode == 0
    assert result.stdout.strip() == f'dmil-ros {__version__}'


def test_help_lists_every_subcommand() -> None:
    result = run('--help')
    assert result.returncode == 0
    assert '--log-level' in result.stdout
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize('name', sorted(COMMANDS))
def test_every_subcommand_has_help(name: str) -> None:
    result = run(name, '--help')
    assert result.returncode == 0, result.stderr
    assert f'usage: dmil-ros {name}' in result.stdout


def test_no_command_prints_usage_and_fails() -> None:
    result = run()
    assert result.returncode == 2
    assert 'usage: dmil-ros' in result.stderr


def test_unknown_log_level_is_rejected() -> None:
    result = run('--log-level', 'loud', '--version')
    assert result.returncode == 2
    assert 'loud' in result.stderr


def test_abbreviated_global_option_is_refused() -> None:
    """'--log debug' used to parse as --log-level and then hide the sub-command's arguments
    ('unrecognized arguments: --out ...')."""
    result = run('--log', 'debug', 'simulate', '--out', 'x')
    assert result.returncode == 2
    assert 'unrecognized arguments: --log' in result.stderr or "'debug'" in result.stderr
    assert '--out' not in result.stderr.splitlines()[-1]


@pytest.mark.parametrize('name', [None, *sorted(COMMANDS)])
def test_argument_parsing_does_not_import_torch_or_onnxruntime(name: str | None) -> None:
    """Start-up stays light: heavy imports happen inside a sub-command's ``run``."""
    argv = [] if name is None else [name]
    code = (
        'import sys\n'
        'from dmil_ros.cli import build_parser\n'
        f'build_parser({argv!r})\n'
        "print(sorted(m for m in ('torch', 'onnxruntime', 'sklearn') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == '[]'


def test_main_reports_usage_errors_through_argparse() -> None:
    with pytest.raises(SystemExit) as info:
        main(['no-such-command'])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ('error', 'code'),
    [(PermissionError(13, 'Permission denied', '/x/out'), 2), (RuntimeError('a bug'), None)],
)
def test_os_errors_are_one_line_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int | None,
) -> None:
    import dmil_ros.runtime.cli as replay_cli

    def fail(args: object) -> int:
        raise error

    monkeypatch.setattr(replay_cli, 'run', fail)
    if code is None:
        with pytest.raises(RuntimeError, match='a bug'):
            main(['replay', 'bag', '--out', 'o'])
        return
    assert main(['replay', 'bag', '--out', 'o']) == code
    assert "Permission denied: '/x/out'" in capsys.readouterr().err
