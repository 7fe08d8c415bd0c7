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

"""Checkpoints: tensors only plus a JSON string, loaded with ``torch.load(weights_only=True)``.

A checkpoint file holds ``{'state_dict': {name: Tensor}, 'optimizer': optimizer.state_dict()
(tensors and numbers) or absent, 'rng': Tensor, 'meta': str, **extra}`` where ``extra`` holds
further tensors / plain containers (``last.pt``: ``'scheduler'``, the LR scheduler's
``state_dict()``, and ``'generator'``, the shuffle generator's ``get_state()``, uint8) and
``meta`` is JSON:
``{'format': 1, 'config': TrainConfig, 'stage': int, 'epoch': int, 'metrics': {...}, ...}``.
No arbitrary object is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmil_ros.atomic import atomic_write
from dmil_ros.train.config import TrainConfig
from dmil_ros.train.errors import CheckpointError, TrainConfigError

FORMAT = 1


def save_checkpoint(
    path: Path,
    model: nn.Module,
    config: TrainConfig,
    meta: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically (temporary file, then rename); ``extra``: tensors / plain containers."""
    blob: dict[str, Any] = {
        'state_dict': {k: v.detach().clone() for k, v in model.state_dict().items()},
        'rng': torch.get_rng_state(),
        'meta': json.dumps({'format': FORMAT, 'config': config.to_dict(), **meta}),
        **(extra or {}),
    }
    if optimizer is not None:
        blob['optimizer'] = optimizer.state_dict()
    atomic_write(path, lambda f: torch.save(blob, f))


def load_checkpoint(path: Path) -> tuple[dict[str, Any], TrainConfig, dict[str, Any]]:
    """``(blob, config, meta)``; raises :class:`CheckpointError` naming the file."""
    if not path.is_file():
        msg = f'checkpoint {str(path)!r}: no such file'
        raise CheckpointError(msg)
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        msg = (
            f'checkpoint {str(path)!r}: not a torch checkpoint that loads with '
            f'weights_only=True ({type(exc).__name__}: {exc})'
        )
        raise CheckpointError(msg) from exc
    if not isinstance(blob, dict) or 'state_dict' not in blob or 'meta' not in blob:
        msg = f'checkpoint {str(path)!r}: not a dmil_ros checkpoint (missing state_dict/meta)'
        raise CheckpointError(msg)
    try:
        meta = json.loads(blob['meta'])
        config = TrainConfig.from_dict(meta['config'])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        msg = f'checkpoint {str(path)!r}: bad meta ({exc})'
        raise CheckpointError(msg) from exc
    except TrainConfigError as exc:
        msg = f'checkpoint {str(path)!r}: the config it carries is invalid ({exc})'
        raise CheckpointError(msg) from exc
    if meta.get('format') != FORMAT:
        msg = f'checkpoint {str(path)!r}: format {meta.get("format")!r} is not {FORMAT}'
        raise CheckpointError(msg)
    return blob, config, meta


def load_model(path: Path) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the network a checkpoint describes, weights loaded, in eval mode."""
    from dmil_ros.model import build_model

    blob, config, meta = load_checkpoint(path)
    model = build_model(config.model)
    try:
        model.load_state_dict(blob['state_dict'])
    except RuntimeError as exc:
        msg = f'checkpoint {str(path)!r}: weights do not match its config ({exc})'
        raise CheckpointError(msg) from exc
    model.eval()
    return model, config, meta
