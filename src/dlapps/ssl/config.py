"""The configuration of a ``dlapps ssl`` run (``config.json`` in its run directory).

The protocol: ``pretrain_images`` training images (a fixed, seed-independent sample of the
training split) are the pretraining set, on which every method trains for ``epochs`` passes
without labels (the supervised ceiling excepted); then every encoder is frozen and judged the
same way on the test split — a linear probe trained with ``probe_labels`` of the pretraining
set's labels (class-balanced, drawn with the seed), k-NN with every label, k-means / fuzzy
c-means against the true classes — and fine-tuned end to end on ``finetune_labels``. Label
amounts are written ``1%`` (of the pretraining set), ``100%`` or a count such as ``600``.
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
from dlapps.ssl.methods import METHODS


def label_count(spec: str | int, total: int) -> int:
    """The number of labelled images ``spec`` asks for out of ``total``: ``"1%"`` → 1% of it
    (rounded), ``"600"`` or 600 → 600. Zero, a negative amount or more than ``total`` is refused."""
    text = str(spec).strip()
    try:
        n = round(float(text[:-1]) / 100 * total) if text.endswith("%") else int(text)
    except ValueError:
        raise ConfigError(f"a label amount is a percentage like 1% or a count like 600, "
                          f"got {spec!r}") from None
    if n < 1:
        raise ConfigError(f"{spec} of {total} images is no label at all: give at least one label per class")
    if n > total:
        raise ConfigError(f"{spec} asks for {n} labels but the pretraining set has {total} images")
    return n


@dataclass
class SslConfig:
    """Everything a ``dlapps ssl`` run depends on."""

    kind: ClassVar[str] = "ssl"

    data: str = "fashion"
    # the floor, one method of each family and the ceiling fit the 5-minute default; the other
    # methods with --methods (every name: `dlapps ssl --methods list`)
    methods: list[str] = field(default_factory=lambda: [
        "random", "rotation", "simclr", "deepcluster", "supervised"])
    seeds: list[int] = field(default_factory=lambda: [0])
    pretrain_images: int = 10000  # a fixed sample of the training split (0: all of it)
    epochs: int = 5  # passes over the pretraining set
    batch_size: int = 64  # measured: 4x the steps of 256 at the same images/s; better features in 5 epochs
    lr: float = 2e-3  # Adam
    weight_decay: float = 1e-5
    lr_schedule: str = "cosine"
    width: int = 32  # encoder channels: width, 2·width, 4·width; features 4·width
    image_size: int | None = None  # None: the data's own side
    channels: int | None = None  # None: the data's own
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"simclr": {"temperature": .2}}
    probe_labels: list[str] = field(default_factory=lambda: ["1%", "10%", "100%"])
    probe_c: float = 1.0  # inverse L2 strength of the logistic-regression probe (fixed, not tuned)
    knn_k: int = 20
    knn_temperature: float = 0.07  # weighted vote exp(s/τ) (Wu et al. 2018, as solo-learn)
    finetune_labels: list[str] = field(default_factory=lambda: ["1%"])
    finetune_steps: int = 200  # Adam steps of fine-tuning on the labelled images (batch 64)
    finetune_lr: float = 1e-3
    epoch_eval: int = 2000  # test images scored by k-NN (and clustering) after every epoch
    tsne: bool = True
    tsne_points: int = 600  # test images per t-SNE panel (first seed)
    device: str = "auto"
    amp: bool = True
    log_every: int = 10

    def validate(self) -> SslConfig:
        check_methods(self.methods, self.seeds, METHODS)
        for name in ("epochs", "batch_size", "width", "knn_k", "finetune_steps", "epoch_eval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.pretrain_images < 0:
            raise ConfigError(f"--pretrain-images must be 0 (all) or more, got {self.pretrain_images}")
        for name in ("lr", "finetune_lr", "probe_c", "knn_temperature"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, got {value}")
        if self.weight_decay < 0:
            raise ConfigError("weight decay must not be negative")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UnknownNameError("learning-rate schedule", self.lr_schedule, LR_SCHEDULES)
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image-size must be at least 8, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {self.channels}")
        if not self.probe_labels:
            raise ConfigError("give at least one --probe-labels amount, e.g. 1%,10%,100%")
        for spec in [*self.probe_labels, *self.finetune_labels]:
            label_count(spec, 10**12)  # the form; the amount is checked against the data later
        check_method_options(self.method_options, METHODS)
        return self

    def options_of(self, method: str) -> dict[str, Any]:
        """The method's declared settings updated by the user's."""
        return {**METHODS[method].options, **self.method_options.get(method, {})}

    def check_methods(self, size: int) -> None:
        """Every method's own refusal of its settings or of the image side (before any write)."""
        for m in self.methods:
            METHODS[m].check(self.options_of(m), size)

    def training_fingerprint(self, method: str, seed: int) -> str:
        """Hash of what one (method, seed) cell computes; a checkpoint made under another
        configuration is refused."""
        ignore = {"methods", "seeds", "device", "tsne", "tsne_points", "log_every", "probe_labels",
                  "probe_c", "knn_k", "knn_temperature", "finetune_labels", "finetune_steps",
                  "finetune_lr", "epoch_eval"}
        d = {k: v for k, v in asdict(self).items() if k not in ignore}
        d.update(method=method, seed=seed, options=self.options_of(method))
        del d["method_options"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
