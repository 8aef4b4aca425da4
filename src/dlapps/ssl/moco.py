r"""MoCo: momentum contrast (He, Fan, Wu, Xie & Girshick, CVPR 2020), with v2's MLP head and
augmentation (Chen, Fan, Girshick & He 2020, "Improved baselines with momentum contrastive
learning").

Contrastive learning as dictionary look-up. A *query* q = g_q(f_q(view₁)) — the trained encoder
f_q (``self.encoder``) and a projection MLP g_q (Linear(D, D) → ReLU → Linear(D, ``proj_dim``),
v2's head) — must find its *positive key* k⁺ = g_k(f_k(view₂)), the other view of the same
image read by the *key encoder*, among K negatives: the keys of earlier batches, kept in a
queue. All vectors are L2-normalised; the loss is InfoNCE with temperature τ (the paper's
eq. 1)::

    L_q = −log  exp(q·k⁺ / τ)  /  [exp(q·k⁺ / τ) + Σ_{n=1..K} exp(q·queue_n / τ)]

i.e. a (K + 1)-way cross-entropy whose target is the positive, averaged over the batch. Only
the query side gets gradients. The key encoder (f_k, g_k) is a momentum copy of the query side::

    θ_k ← m θ_k + (1 − m) θ_q

so the keys in the queue change slowly and stay comparable across batches, which is what lets
the dictionary be far larger than a batch. The queue is first-in-first-out: each training step
enqueues its B keys and drops the B oldest (a ring buffer of K rows, with a pointer to the
oldest; any K works, the pointer wraps around).

Choices (options ``moco.*``):

* ``queue`` K = 4096 (He et al. use 65536 on ImageNet's 1.28 M images; their CIFAR-10 demo,
  facebookresearch/moco's colab, uses 4096 on 50 000 images and reports the gain saturating
  there). K larger than the pretraining set also works, but then the
  queue holds older keys of the query's own image among its negatives.
* ``momentum`` m = 0.99. The paper's 0.999 averages over ~1000 steps, a small window of its
  hundreds of thousands; our runs are a few thousand steps long, where 0.999 would leave the key
  encoder close to its random initialisation for a large part of training (the CIFAR-10 demo
  uses 0.99 too).
* ``temperature`` τ = 0.2 (v2; v1 used 0.07). ``proj_dim`` = 64 (v2: 128 for a 2048-wide
  ResNet; our encoder has D = 128).
* ``bn_splits`` = 4, **shuffling BN on one process**. He et al. compute keys on GPUs that each
  hold a shuffled part of the batch, because with batch norm over the very images of the queries
  the keys can leak batch statistics (the model learns to find its positive by the batch it came
  in, not by content, and the pretext accuracy climbs while the features stay poor). Here one
  process simulates ``bn_splits`` GPUs: the queries are encoded in that many chunks of the batch
  in its order, the keys in chunks of a random permutation of it (then put back in order), so a
  query and its key are normalised with the statistics of different sets of images. 1 turns it
  off (whole-batch BN on both sides). The CIFAR-10 demo does the same with a split batch-norm
  layer (8 splits of its batch of 512) and reports 4% lower kNN accuracy without it.

Order of the momentum update. The engine calls ``forward`` once per step and then takes the
optimiser step, so the update is done at the start of ``forward``, before the keys are computed:
the keys of step t are read with θ_k updated from θ_q after step t − 1 — exactly the paper's
"update after each step". The only differences: the first call's update is a no-op (θ_k is
still a copy of θ_q), and after the last step no update follows (the key encoder is thrown
away, so nothing is lost). It is done (and keys are enqueued) only in training mode, so an
eval-mode ``forward`` changes nothing.

Buffers (batch-norm running statistics) follow the same exponential average as the weights
(integer ones, the batch counts, are copied); the key encoder's own training-mode forward also
moves them, as in He et al.'s code, which averages the weights only. They are never read in
training — keys are computed in training mode, with batch statistics — so this only keeps the
key encoder close to a moving average of the query side, should anyone run it in eval mode.

The key encoder, key head, queue and pointer are submodules and buffers, so a checkpoint holds
them and a continued run goes on with the same dictionary. ``pretext_acc`` is the fraction of
queries whose positive beats every negative of the queue. The judged features are the query
encoder's.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.data.augment import contrastive_view
from dlapps.errors import ConfigError
from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod, check_whole
from dlapps.ssl.simclr import check_temperature, projection_head


class MoCo(SslMethod):
    name = "moco"
    description = "queries find their key among a queue of earlier keys (He et al. 2020, MoCo v2)"
    family = "contrastive"
    options = {"queue": 4096, "momentum": 0.99, "temperature": 0.2, "proj_dim": 64, "bn_splits": 4}

    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.temperature = float(self.option("temperature"))
        self.momentum = float(self.option("momentum"))
        self.bn_splits = int(self.option("bn_splits"))
        proj_dim, k = int(self.option("proj_dim")), int(self.option("queue"))
        self.head = projection_head(encoder.dim, proj_dim)
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.key_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(k, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        check_temperature(cls.name, options["temperature"])
        m = options["momentum"]
        try:
            ok = math.isfinite(float(m)) and 0.0 <= float(m) < 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"moco.momentum must be in [0, 1), got {m}")
        for key in ("queue", "proj_dim", "bn_splits"):
            check_whole(cls.name, key, options[key], 1)

    def _pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.key_encoder, self.encoder), (self.key_head, self.head)]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q for every weight and floating buffer of the key encoder and
        head; integer buffers (batch-norm counts) are copied."""
        for key_side, query_side in self._pairs():
            for pk, pq in zip(key_side.parameters(), query_side.parameters(), strict=True):
                pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)
            for bk, bq in zip(key_side.buffers(), query_side.buffers(), strict=True):
                if bk.is_floating_point():
                    bk.mul_(self.momentum).add_(bq, alpha=1.0 - self.momentum)
                else:
                    bk.copy_(bq)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (n, proj_dim) over the n oldest rows of the queue (first in, first out;
        the pointer wraps around K); with n > K only the last K keys stay."""
        k, n = len(self.queue), len(keys)
        slots = (self.queue_ptr + torch.arange(n, device=self.queue.device)) % k
        if n > k:
            keys, slots = keys[n - k:], slots[n - k:]
        self.queue[slots] = keys.detach().to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % k)

    def _chunks(self, n: int) -> int:
        return max(1, min(self.bn_splits, n))

    def _queries(self, view: torch.Tensor) -> torch.Tensor:
        parts = view.tensor_split(self._chunks(len(view)))
        return F.normalize(torch.cat([self.head(self.encoder(p)) for p in parts]), dim=1)

    @torch.no_grad()
    def _keys(self, view: torch.Tensor) -> torch.Tensor:
        perm = torch.randperm(len(view)).to(view.device)
        parts = view[perm].tensor_split(self._chunks(len(view)))
        shuffled = torch.cat([self.key_head(self.key_encoder(p)) for p in parts])
        keys = torch.empty_like(shuffled)
        keys[perm] = shuffled
        return F.normalize(keys, dim=1)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        if self.training:
            self.momentum_update()
        view_q, view_k = contrastive_view(x), contrastive_view(x)
        q = self._queries(view_q)
        k = self._keys(view_k)
        positive = (q * k).sum(1, keepdim=True)
        negative = q @ self.queue.clone().to(q.dtype).T
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(len(x), dtype=torch.long, device=x.device))
        with torch.no_grad():
            acc = (positive.squeeze(1) > negative.max(1).values).float().mean()
        if self.training:
            self.enqueue(k)
        return {"loss": loss, "pretext_acc": acc}
