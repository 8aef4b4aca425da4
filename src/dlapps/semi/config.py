"""The configuration of a ``dlapps semi`` run (``config.json`` in its run directory).

The protocol is the lecture's (Lee 2013): from the training images, ``labels`` are drawn
class-balanced with the run's seed (``labels / classes`` per class; with ``missing_class`` that
class gets none and the total is spread over the others); the rest of the training images are
the unlabelled set, whose labels the methods never see; the test split measures. One epoch is one
pass over the unlabelled set (``unlabelled_batch`` images per step, ``batch_size`` labelled images
beside them), the same number of steps for every method.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from dlapps.config import check_method_options, check_methods
from dlapps.engine.schedules import LR_SCHEDULES
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.semi.methods import METHODS


@dataclass
class SemiConfig:
    """Everything a ``dlapps semi`` run depends on."""

    kind: ClassVar[str] = "semi"

    data: str = "mnist5k"
    labels: list[int] = field(default_factory=lambda: [1000])  # total labelled images, per setting
    missing_class: int | str | None = None  # a class (index or name) given no labels
    # the floor, Lee's method and the strongest baseline fit the 5-minute default; add
    # mean-teacher and full (the ceiling) with --methods
    methods: list[str] = field(default_factory=lambda: ["supervised", "pseudo-label", "fixmatch"])
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 30  # passes over the unlabelled set
    batch_size: int = 32  # labelled images per step
    unlabelled_batch: int = 96  # unlabelled images per step (μ = 3)
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    image_size: int | None = None  # None: the data's own side
    channels: int | None = None  # None: the data's own
    dropout: float = 0.5  # on the classifier's hidden layers, as in Lee's networks
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"fixmatch": {"threshold": .9}}
    tsne: bool = True
    tsne_epochs: int = 3  # snapshots over training (first, middle, last ...)
    tsne_points: int = 500  # unlabelled points per snapshot (plus 10 labelled per class)
    device: str = "auto"
    amp: bool = True
    log_every: int = 10
    # --- added with issue 17 (speed): the network's weights in channels_last, so its convolutions
    # run NHWC (1.3x the step of this digit network on a CPU, bench/results/step_speed.md); a speed
    # setting, left out of the fingerprint and of the run folder's settings check
    channels_last: bool = True

    def validate(self) -> SemiConfig:
        check_methods(self.methods, self.seeds, METHODS)
        if not self.labels:
            raise ConfigError("give --labels, the number of labelled images (e.g. 1000)")
        for n in self.labels:
            if not isinstance(n, int) or n < 1:
                raise ConfigError(f"--labels takes positive whole numbers, got {n!r}")
        for name in ("epochs", "batch_size", "unlabelled_batch", "tsne_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0 or self.momentum < 0:
            raise ConfigError("momentum and weight decay must not be negative")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UnknownNameError("learning-rate schedule", self.lr_schedule, LR_SCHEDULES)
        if self.image_size is not None and self.image_size < 16:
            raise ConfigError(f"--image-size must be at least 16, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {self.channels}")
        check_method_options(self.method_options, METHODS)
        return self

    def training_fingerprint(self, method: str, labels: int, seed: int) -> str:
        """Hash of what one (method, labels, seed) cell computes; a checkpoint made under another
        configuration is refused."""
        ignore = {"methods", "seeds", "labels", "device", "tsne", "tsne_epochs", "tsne_points",
                  "log_every", "channels_last"}
        d = {k: v for k, v in asdict(self).items() if k not in ignore}
        d.update(method=method, labels=labels, seed=seed,
                 options=self.method_options.get(method, {}))
        del d["method_options"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
