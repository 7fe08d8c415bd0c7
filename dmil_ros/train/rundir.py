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

"""A training run's directory: refusing to clobber an earlier run, checking a resume against
the run's own bags and config, and the files that describe the run (``config.json``,
``data.json``).

Every check here runs before a bag is read (but :func:`check_recordings`, which compares the
bags read with what ``data.json`` recorded of them), and nothing of a run is rewritten by a
command that is then refused: the CLI writes the run's files only after every check.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from dmil_ros.train.config import TrainConfig
from dmil_ros.train.errors import CheckpointError, TrainConfigError, TrainError

logger = logging.getLogger(__name__)


def earlier_run(out: Path) -> list[Path]:
    """The files an earlier run left in ``out`` that a fresh run removes: checkpoints, summary
    and TensorBoard events (TensorBoard would mix the two runs' curves)."""
    stale = sorted(out.glob('stage*_best.pt'))
    stale += [out / n for n in ('model.pt', 'last.pt', 'summary.json') if (out / n).exists()]
    return stale + sorted((out / 'tb').glob('events.out.tfevents.*'))


def check_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into ``out`` when it holds an earlier run that neither ``resume`` (go on
    with it) nor ``overwrite`` (replace it: :func:`train` removes its files) was asked for."""
    if resume and overwrite:
        msg = '--resume continues the run in --out, --overwrite replaces it: choose one'
        raise TrainError(msg)
    earlier = [] if resume or overwrite else earlier_run(out)
    if earlier:
        names = ', '.join(str(p.relative_to(out)) for p in earlier[:4])
        more = f' and {len(earlier) - 4} more' if len(earlier) > 4 else ''
        msg = (
            f'--out {str(out)!r} holds an earlier run ({names}{more}): --resume continues '
            'it, --overwrite replaces it'
        )
        raise TrainError(msg)


_TWICE = {
    '--bags': 'its two copies would be two recordings whose time blocks interleave, so '
    'validation would score training frames',
    '--val-bags': 'its frames would count twice in every validation figure',
}


def check_bags(out: Path, bags: list[Path], val_bags: list[Path], *, resume: bool) -> None:
    """Refuse a recording given twice (within ``--bags``, within ``--val-bags`` or in both,
    compared by the storage files read, not the paths as typed: ``DIR`` and ``DIR/DIR.mcap``
    are one recording), and a resume on other bags than the run's (its checkpoints were
    trained on those), before any bag is read."""
    from dmil_ros.bagio.reader import recording

    found = {'--bags': [(b, recording(b)) for b in bags],
             '--val-bags': [(b, recording(b)) for b in val_bags]}  # fmt: skip
    for flag, group in found.items():
        for i, (bag, files) in enumerate(group):
            for first, earlier in group[:i]:
                if files & earlier:
                    names = sorted(f.name for f in files & earlier)
                    msg = (
                        f'{flag} {str(first)!r} and {str(bag)!r} are one recording (both read '
                        f'{names}): {_TWICE[flag]}; give it once'
                    )
                    raise TrainConfigError(msg)
    shared = [
        str(b) for b, files in found['--val-bags'] if any(files & t for _, t in found['--bags'])
    ]
    if shared:
        msg = f'--val-bags {shared} are also --bags: validation would score training frames'
        raise TrainConfigError(msg)
    train_set, val_set = ([Path(b).resolve() for b in group] for group in (bags, val_bags))
    recorded = recorded_bags(out) if resume else None
    if recorded is None:
        return
    # runs before absolute paths stored them as typed: resolved from here, as typed
    if [[b.resolve() for b in group] for group in recorded] != [train_set, val_set]:
        was_bags, was_val = ([str(b) for b in group] for group in recorded)
        msg = (
            f'resume {str(out)!r}: the run was trained on --bags {was_bags} '
            f'--val-bags {was_val}; resume it on the same bags'
        )
        raise TrainConfigError(msg)


def check_recordings(out: Path, stats: list[Any]) -> None:
    """Refuse a resume whose bags hold other pairs than ``data.json`` recorded for the run (per
    bag: the pair count, first and last stamp and digest of the pairs, as in
    :class:`dmil_ros.train.data.BagStats` ``stats``, in the order of ``--bags`` then
    ``--val-bags``): another recording at the same path, whose frames the run's checkpoints
    and split were not made from."""
    if not (out / 'data.json').is_file():
        return
    data = _run_json(out, 'data.json', TrainError)
    recorded = data.get('stats') if isinstance(data, dict) else None
    if not isinstance(recorded, list) or len(recorded) != len(stats):
        return  # no per-bag record to compare (check_bags has compared the bags themselves)
    for was, now in zip(recorded, stats, strict=True):
        if not isinstance(was, dict):
            continue
        changed = []
        if was.get('pairs') is not None and was['pairs'] != now.pairs:
            changed.append(f'{was["pairs"]} pairs, now {now.pairs}')
        # stamps and digest are absent from runs started before they were recorded
        stamps = was.get('stamps')
        if _stamps(stamps) and now.stamps is not None and list(stamps) != list(now.stamps):
            changed.append(f'pairs stamped {_span(stamps)}, now {_span(now.stamps)}')
        digest = was.get('digest')
        if isinstance(digest, str) and now.digest is not None and digest != now.digest:
            changed.append(f'pairs digest {digest}, now {now.digest}')
        if changed:
            msg = (
                f'resume {str(out)!r}: bag {now.bag!r} is not the recording the run was '
                f"trained on (data.json: {'; '.join(changed)}); resume on the run's own "
                'recordings, or start a new run on this one (--overwrite or another --out)'
            )
            raise TrainConfigError(msg)


def _stamps(value: object) -> TypeGuard[list[int]]:
    return isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)


def _span(stamps: list[int] | tuple[int, int]) -> str:
    return f'{stamps[0] * 1e-9:.3f}..{stamps[1] * 1e-9:.3f} s'


def run_config(out: Path, config: Path | None, kind: str | None, *, resume: bool) -> TrainConfig:
    """The config to train with: the file ``config`` (``--config``; the defaults without it),
    model kind ``kind`` (``--model``) applied. A resume continues on the config the run stored
    in ``config.json``: taken from there when ``config`` is not given, and a config or kind that
    differs from it is refused (the run's checkpoints were trained with that one)."""
    given = TrainConfig.load(config) if config is not None else None
    stored_path = out / 'config.json'
    stored = TrainConfig.load(stored_path) if resume and stored_path.is_file() else None
    chosen = given if given is not None else stored if stored is not None else TrainConfig()
    if kind:
        chosen = chosen.with_kind(kind)
    if stored is None:
        return chosen
    if chosen != stored:
        options = {}  # the options that made the difference: flag -> value as given
        if given is not None and given != stored:
            options['--config'] = repr(str(config))
        if kind and kind != stored.model.kind:
            options['--model'] = kind
        msg = (
            f'resume {str(out)!r}: {" with ".join(f"{k} {v}" for k, v in options.items())} '
            f'differs from the config the run was started with ({str(stored_path)!r}) in '
            f'{config_changes(stored, chosen)}; omit {" and ".join(options)} to continue with '
            "the run's own config (or pass that file), or start a new run (--overwrite or "
            'another --out) to train with this one'
        )
        raise TrainConfigError(msg)
    if given is None:
        logger.info("resume %s: training with the run's config %s", out, stored_path)
    return chosen


def config_changes(old: TrainConfig, new: TrainConfig, shown: int = 4) -> str:
    """The fields (``section.name``) in which ``new`` differs from ``old``, with both values:
    the first ``shown``, then how many more."""
    a, b = old.to_dict(), new.to_dict()
    changed = [
        f'{section}.{name} ({a[section].get(name)!r} -> {b[section].get(name)!r})'
        for section in sorted(a)
        for name in sorted(set(a[section]) | set(b[section]))
        if a[section].get(name) != b[section].get(name)
    ]
    more = f' and {len(changed) - shown} more' if len(changed) > shown else ''
    return ', '.join(changed[:shown]) + more


def _run_json(out: Path, name: str, error: type[TrainError]) -> Any:
    """The JSON document ``out/name`` of a run; ``error`` naming it when it does not read."""
    try:
        return json.loads((out / name).read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f'run {str(out)!r}: {name} is not readable JSON ({exc})'
        raise error(msg) from exc


def training_summary(out: Path) -> dict[str, Any]:
    """The run's ``summary.json`` (written when training finished), checked to be an object."""
    if not (out / 'summary.json').is_file():
        msg = f'run {str(out)!r}: summary.json missing (training did not finish)'
        raise CheckpointError(msg)
    training = _run_json(out, 'summary.json', CheckpointError)
    if not isinstance(training, dict):
        msg = (
            f'run {str(out)!r}: summary.json holds a {type(training).__name__}, not the '
            'training summary (an object)'
        )
        raise CheckpointError(msg)
    return training


def run_checkpoint(out: Path, name: str) -> tuple[Path, str]:
    """The checkpoint ``name`` (``--checkpoint``, relative to the run ``out``) and its path
    within the run; refused when it lies outside the run: the export describes the run's
    training (summary, bags, split), not another run's."""
    root = out.resolve()
    path = (out / name).resolve()
    if not path.is_relative_to(root):
        msg = (
            f'--checkpoint {name!r}: {str(path)!r} lies outside the run {str(out)!r}, whose '
            'training the metadata and model card describe; export it from the run that '
            'trained it (dmil-ros export THAT_RUN --checkpoint NAME)'
        )
        raise CheckpointError(msg)
    return path, path.relative_to(root).as_posix()


def check_checkpoint(out: Path, name: str, config: TrainConfig, training: dict[str, Any]) -> None:
    """Refuse the checkpoint ``name`` of the run ``out`` when the config it carries is not the
    run's (``config.json``; the kind in ``summary.json`` ``training`` for runs without one): it
    was trained by another run, and the metadata and card would mix the two."""
    stored = out / 'config.json'
    if stored.is_file():
        run_cfg = TrainConfig.load(stored)
        if config != run_cfg:
            msg = (
                f"--checkpoint {name!r}: its config differs from the run's ({str(stored)!r}) "
                f'in {config_changes(run_cfg, config)}: it was not trained by this run '
                f"(kind {config.model.kind}, the run's {run_cfg.model.kind}); export it "
                'from the run that trained it'
            )
            raise CheckpointError(msg)
    elif training.get('kind') not in (None, config.model.kind):
        msg = (
            f'--checkpoint {name!r}: a {config.model.kind} model, but the run {str(out)!r} '
            f'trained a {training.get("kind")} model (summary.json): it was not trained by this '
            'run; export it from the run that trained it'
        )
        raise CheckpointError(msg)


@dataclass(frozen=True)
class FitFrames:
    """What an export checks its graph and fits its PID heads on."""

    bags: list[Path]
    label: str  # what they are, for the model card
    held_out: bool  # the run's validation time blocks lie in ``bags``: leave them out


def fit_frames(out: Path, bags: list[Path], *, pid: bool) -> FitFrames:
    """``bags`` when given, else the run's own training bags (``data.json``), with the run's
    validation time blocks to leave out when they lie in them; a training bag that moved is an
    error when the PID heads (``pid``) are to be fitted: they drive the node's synergy alarm
    (runs before paths were stored resolved kept them as typed, relative to their cwd)."""
    recorded = None if bags else recorded_bags(out)
    if recorded is None:
        return FitFrames(bags, 'frames of --bags', held_out=False)
    listed, val_bags = recorded
    found = [b for b in listed if b.exists()]
    missing = [str(b) for b in listed if not b.exists()]
    if missing and pid:
        msg = (
            f'run {str(out)!r}: training bags {missing} (data.json) not found: pass the bags to '
            'fit the PID heads on with --bags, or export without them (--no-pid)'
        )
        raise CheckpointError(msg)
    if val_bags:  # validation had bags of its own: every training bag frame trained
        return FitFrames(found, 'training frames', held_out=False)
    if not missing:  # the run's own split, on the same bags in the same order
        return FitFrames(found, 'training frames', held_out=True)
    # (without PID heads) the split depends on every bag: validation blocks not left out
    return FitFrames(found, "frames of the run's training bags", held_out=False)


def recorded_bags(out: Path) -> tuple[list[Path], list[Path]] | None:
    """The training and validation bags ``data.json`` records for the run (None: no file)."""
    if not (out / 'data.json').is_file():
        return None
    data = _run_json(out, 'data.json', TrainError)
    bags = data.get('bags', []) if isinstance(data, dict) else None
    val_bags = data.get('val_bags', []) if isinstance(data, dict) else None
    if not (_paths(bags) and _paths(val_bags)):
        msg = (
            f"run {str(out)!r}: data.json is not a run's data file (an object whose 'bags' and "
            "'val_bags' are lists of paths)"
        )
        raise TrainError(msg)
    return [Path(b) for b in bags], [Path(b) for b in val_bags]


def _paths(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def write_run_files(
    out: Path,
    config_json: str,
    bags: list[Path],
    val_bags: list[Path],
    stats: list[Any],
    *,
    resume: bool,
) -> None:
    """``config.json`` and ``data.json`` (the bags as absolute paths: the export finds them from
    any directory, and their stats); a resumed run keeps the ones it started with (the trainer
    refuses another config, :func:`check_bags` other bags)."""
    out.mkdir(parents=True, exist_ok=True)
    if not (resume and (out / 'config.json').is_file()):
        (out / 'config.json').write_text(config_json, encoding='utf-8')
    if not (resume and (out / 'data.json').is_file()):
        data = {
            'bags': [str(Path(b).resolve()) for b in bags],
            'val_bags': [str(Path(b).resolve()) for b in val_bags],
            'stats': [s.to_dict() for s in stats],
        }
        (out / 'data.json').write_text(json.dumps(data, indent=1), encoding='utf-8')


__all__ = [
    'FitFrames',
    'check_bags',
    'check_checkpoint',
    'check_out',
    'check_recordings',
    'config_changes',
    'earlier_run',
    'fit_frames',
    'recorded_bags',
    'run_checkpoint',
    'run_config',
    'training_summary',
    'write_run_files',
]
