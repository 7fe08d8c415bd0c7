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

"""LSMI's (and BATCH's) discriminators p(y|x1), p(y|x2), p(y|x1,x2): small torch MLPs.

Only needed when no external class probabilities are supplied (the audit and the exported heads
always supply the model's own heads, so they run without torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from dmil_ros.pid.modules import evaluate_chunked

__all__ = ['discriminator_log_probs', 'seeded_init', 'train_classifier']


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Layers built inside initialise from torch's global generator seeded with ``seed``, for
    this block only: the caller's random stream is left as it was (review 22b #4)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train_classifier(
    x: NDArray[np.floating],
    labels: NDArray[np.integer],
    n_classes: int,
    *,
    hidden: int = 64,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    patience: int = 0,
    val_fraction: float = 0.1,
    tol: float = 1e-3,
) -> nn.Sequential:
    """Standardise-then-MLP classifier (D -> hidden -> hidden -> C logits), Adam on cross-entropy.

    The standardisation is the first (fixed) layer, so the module takes raw features.
    ``patience`` > 0: hold out ``val_fraction`` of the samples, stop after ``patience`` epochs
    without a validation cross-entropy gain of ``tol`` nats and keep the best epoch's weights.
    """
    xs = np.asarray(x, dtype=np.float32)
    gen = torch.Generator().manual_seed(seed)
    mean = xs.mean(0)
    std = xs.std(0) + 1e-6
    with seeded_init(seed):
        norm = nn.Linear(xs.shape[1], xs.shape[1])
        net = nn.Sequential(
            norm,
            nn.Linear(xs.shape[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )
    with torch.no_grad():
        norm.weight.copy_(torch.diag(torch.as_tensor(1.0 / std)))
        norm.bias.copy_(torch.as_tensor(-mean / std))
    norm.requires_grad_(False)
    xt = torch.as_tensor(xs)
    yt = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    n_val = round(val_fraction * len(xt)) if patience > 0 else 0
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    if n_val > 0 and len(xt) - n_val >= 2:
        order = torch.randperm(len(xt), generator=gen)
        val = (xt[order[:n_val]], yt[order[:n_val]])
        xt, yt = xt[order[n_val:]], yt[order[n_val:]]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    n = len(xt)
    steps = epochs * max(1, math.ceil(n / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state, waited = math.inf, None, 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            b = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xt[b]), yt[b])
            loss.backward()
            opt.step()
            sched.step()
        if val is None:
            continue
        # early stopping on the held-out cross-entropy (nats)
        with torch.no_grad():
            val_loss = float(loss_fn(net(val[0]), val[1]))
        if val_loss < best - tol:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net


class _Heads(nn.Module):
    def __init__(self, d1: nn.Module, d2: nn.Module, d12: nn.Module) -> None:
        super().__init__()
        self.d1, self.d2, self.d12 = d1, d2, d12

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, f12: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.log_softmax(self.d1(f1), -1),
            torch.log_softmax(self.d2(f2), -1),
            torch.log_softmax(self.d12(f12), -1),
        )


def discriminator_log_probs(
    discriminators: tuple[nn.Module, nn.Module, nn.Module],
    f1: NDArray[np.float64],
    f2: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Natural-log class probabilities (N, C) of the three discriminators (f12 = [f1, f2])."""
    out = evaluate_chunked(
        _Heads(*discriminators), [f1, f2, np.concatenate([f1, f2], axis=1)], chunk=16384
    )
    return out[0], out[1], out[2]
