"""Batches straight from in-memory tensors: no DataLoader, no per-sample Python.

A domain's images live as one uint8 tensor (N,C,H,W) — on the training device when there is one —
and a step's batch is one fancy-indexing gather plus a conversion to float in [0, 1]. The order
is a fresh permutation per epoch drawn from a generator seeded by (seed, epoch), so it needs no
saved state: a resumed run sees exactly the batches an uninterrupted run would have seen. Under
DistributedDataParallel every rank draws the same global batch and keeps its own slice of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from dlapps.errors import ConfigError


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


def index_stream(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices into ``range(n)``: consecutive random permutations, cut to length."""
    perms = [torch.randperm(n, generator=generator) for _ in range(-(-count // n))]
    return torch.cat(perms)[:count]


@dataclass
class Labelled:
    """Images (uint8, N,C,H,W) — or any rows (N, ...), e.g. features — and N int64 labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim < 2 or len(self.x) != len(self.y):
            raise ConfigError(f"need rows (N, ...) such as images (N,C,H,W) and N labels, got "
                              f"{tuple(self.x.shape)} and {tuple(self.y.shape)}")

    def to(self, device: torch.device) -> Labelled:
        return Labelled(self.x.to(device), self.y.to(device))


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class PairedBatches:
    """Per step: ``(xs, ys, xt, yt)`` with ``batch_size`` images of each domain in use
    (``target_batch_size`` target images when given: FixMatch's μ·B unlabelled per B labelled).

    One epoch is one pass over the *driving* domain (``drive``: the source when there is one,
    else the target; ``drive="target"`` makes it the target — the unlabelled set of
    semi-supervised learning); the other domain is drawn from its own permutations alongside. A
    missing domain yields None in its places, and so do the target labels unless
    ``target_labels`` is set: an adaptation method never sees them.
    """

    def __init__(self, source: Labelled | None, target: Labelled | None, batch_size: int,
                 seed: int, rank: int = 0, world: int = 1, target_labels: bool = False,
                 target_batch_size: int | None = None, drive: str = "source") -> None:
        if source is None and target is None:
            raise ConfigError("need a source or a target domain to draw batches from")
        sizes = (batch_size, batch_size if target_batch_size is None else target_batch_size)
        for name, d, size in (("source", source, sizes[0]), ("target", target, sizes[1])):
            if size < 1:
                raise ConfigError(f"batch size must be at least 1, got {size}")
            if d is not None and size > len(d.y):
                raise ConfigError(f"batch size {size} is larger than the {name} training "
                                  f"set ({len(d.y)} images); use --batch-size {len(d.y)} or less")
            if size % world:
                raise ConfigError(f"batch size {size} does not split over {world} processes")
        if drive not in ("source", "target"):
            raise ConfigError(f"drive must be 'source' or 'target', got {drive!r}")
        self.source, self.target = source, target
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.target_labels = target_labels
        self.target_batch_size, self.drive = target_batch_size, drive
        self.sizes = sizes
        driver = 1 if (drive == "target" and target is not None) or source is None else 0
        self.steps_per_epoch = len((source, target)[driver].y) // sizes[driver]

    def to(self, device: torch.device) -> PairedBatches:
        return PairedBatches(self.source and self.source.to(device),
                             self.target and self.target.to(device), self.batch_size, self.seed,
                             self.rank, self.world, self.target_labels, self.target_batch_size,
                             self.drive)

    def epoch(self, epoch: int) -> Iterator[tuple]:
        streams = [None if d is None else index_stream(len(d.y), self.steps_per_epoch * size,
                                                       epoch_generator(self.seed, epoch, k))
                   for k, (d, size) in enumerate(zip((self.source, self.target), self.sizes, strict=True))]
        for step in range(self.steps_per_epoch):
            batch: list = []
            for d, idx, size in zip((self.source, self.target), streams, self.sizes, strict=True):
                if d is None:
                    batch += [None, None]
                    continue
                sel = idx[step * size:(step + 1) * size][self.rank::self.world]
                sel = sel.to(d.x.device)
                batch += [to_float(d.x[sel]), d.y[sel]]
            if not self.target_labels:
                batch[3] = None
            yield tuple(batch)


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with eval_mode(net):`` the module in eval mode inside (batch norm's running statistics,
    no dropout), back in the mode it was in afterwards — also when the block raises."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``with frozen(d):`` the module's parameters stop requiring gradients inside, so a graph built
    there skips their weight gradients (a GAN's G step through D needs only ∂D/∂input); each is back
    as it was afterwards — also when the block raises."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


@torch.no_grad()
def batched(fn, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Apply ``fn`` to uint8 images in batches on ``device``; results on the CPU."""
    outs = [fn(to_float(chunk.to(device))).float().cpu() for chunk in x.split(batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def fixed_sample(n_total: int, k: int, seed: int = 0) -> torch.Tensor:
    """The same ``k`` indices for every method, so t-SNE plots compare like with like."""
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[: min(k, n_total)]


class IndexedBatches:
    """Per step: ``(x, idx)`` — ``batch_size`` images of one set and their indices in it (the
    rows a method looks its own per-image state up with: DeepCluster's pseudo-labels).

    An epoch is ``len(x) // batch_size`` steps. The draw is a fresh permutation per epoch
    (seeded by (seed, epoch), like :class:`PairedBatches`), or, when ``weights()`` returns
    per-row weights, rows drawn with replacement in proportion to them (DeepCluster samples
    uniformly over its clusters). ``weights`` is read at the start of every epoch, so it may
    change between epochs; it must be a function of state that a checkpoint restores.
    """

    def __init__(self, x: torch.Tensor, batch_size: int, seed: int,
                 weights=None) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if batch_size > len(x):
            raise ConfigError(f"batch size {batch_size} is larger than the training set ({len(x)} "
                              f"images); use --batch-size {len(x)} or less")
        self.x, self.batch_size, self.seed, self.weights = x, batch_size, seed, weights
        self.steps_per_epoch = len(x) // batch_size

    def to(self, device: torch.device) -> IndexedBatches:
        return IndexedBatches(self.x.to(device), self.batch_size, self.seed, self.weights)

    def epoch(self, epoch: int) -> Iterator[tuple]:
        count = self.steps_per_epoch * self.batch_size
        generator = epoch_generator(self.seed, epoch)
        w = self.weights() if self.weights is not None else None
        if w is None:
            order = index_stream(len(self.x), count, generator)
        else:
            order = torch.multinomial(w.double().cpu(), count, replacement=True, generator=generator)
        for step in range(self.steps_per_epoch):
            sel = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield to_float(self.x[sel.to(self.x.device)]), sel.to(self.x.device)
