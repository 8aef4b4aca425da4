"""What a domain adaptation method is, and the registry that names them.

A method is an ``nn.Module`` that owns the network and turns one step's batches into losses::

    losses = method(xs, ys, xt, yt, progress)   # dict; losses["loss"] is what the engine minimises

``xs, ys`` are a labelled source batch, ``xt`` an unlabelled target batch; ``yt`` is the target
labels *only* for methods that declare ``uses_target_labels`` (the train-on-target ceiling) and
None for every other method, so an adaptation method cannot peek. ``progress`` is p ∈ [0, 1].
Other entries of the dict (accuracies, λ) are logged. Because the step is the module's
``forward``, the engine can wrap the whole method in DistributedDataParallel.

Adding a method is one file with a subclass of :class:`Method` and one line in
:mod:`dlapps.adapt.methods` registering it by name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.engine.schedules import lambda_schedule
from dlapps.models.digits import DomainAdaptationNet


class Method(nn.Module):
    """Base class: a training rule over a :class:`DomainAdaptationNet`."""

    name: ClassVar[str] = "method"
    description: ClassVar[str] = ""
    uses_source: ClassVar[bool] = True
    uses_target_images: ClassVar[bool] = False
    uses_target_labels: ClassVar[bool] = False
    trains_discriminator: ClassVar[bool] = False
    #: the settings a user may give in ``config.method_options[name]``, with their defaults
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, net: DomainAdaptationNet, config) -> None:
        super().__init__()
        self.net = net
        self.config = config
        self.lambda_p = lambda_schedule(config.lambda_schedule, config.gamma, config.lambda_max)
        self.warmup_acc = float(getattr(config, "warmup_acc", 0.0) or 0.0)
        if self.warmup_acc:  # the progress at which the gate opened (-1: closed); saved, so resumed
            self.register_buffer("opened_at", torch.tensor(-1.0))

    # --- the warm-up gate of the alignment terms -------------------------------------------------
    def open_gate(self, source_acc: float, progress: float) -> None:
        """Called after every evaluation with the *held-out source* accuracy: the gate opens (for
        good) the first time it reaches ``config.warmup_acc``. No target label is involved."""
        if self.warmup_acc and self.opened_at < 0 and source_acc >= self.warmup_acc:
            self.opened_at.fill_(progress)

    def gate_open(self) -> bool:
        return not self.warmup_acc or bool(self.opened_at >= 0)

    def alignment(self, progress: float) -> float:
        """The weight λ of a method's alignment term at progress p: the run's schedule λ_p, or,
        with the warm-up gate, 0 until the gate opens at p₀ and λ((p − p₀) / (1 − p₀)) after."""
        if not self.warmup_acc:
            return self.lambda_p(progress)
        p0 = float(self.opened_at)
        return 0.0 if p0 < 0 else self.lambda_p(min(1.0, (progress - p0) / max(1e-9, 1.0 - p0)))

    def forward(self, xs, ys, xt, yt, progress: float) -> dict[str, torch.Tensor | float]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """The optimizer's parameter groups; a group may carry an ``lr_mult`` on the schedule's
        rate (the engine applies it every step). Default: every trainable parameter, × 1 — except
        a pretrained backbone's (``net.pretrained_parameters()``), at ``net.backbone_lr_mult``."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        ids = {id(p) for p in self.net.pretrained_parameters()}
        if not ids:
            return [{"params": trainable}]
        return [{"params": [p for p in trainable if id(p) not in ids]},
                {"params": [p for p in trainable if id(p) in ids], "lr_mult": self.net.backbone_lr_mult}]

    def option(self, key: str, section: str | None = None):
        """A method setting: ``config.method_options[section or name][key]`` when given, else
        its declared default ``options[key]`` (e.g. ``{"dan": {"estimator": "linear"}}``)."""
        given = getattr(self.config, "method_options", None) or {}
        return given.get(section or self.name, {}).get(key, self.options[key])

    def source_and_target(self, xs, ys, xt, layers=()) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One pass of source and target through the network (batch-norm statistics shared):
        the activations of ``layers`` (see :func:`~dlapps.adapt.losses.layer_outputs`) for both
        domains, rows source first, and the cross-entropy on the source rows."""
        from dlapps.adapt.losses import layer_outputs

        outs = layer_outputs(self.net, torch.cat([xs, xt]), layers)
        return outs, F.cross_entropy(outs["logits"][: len(xs)], ys)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits *with* gradient, through the network the method deploys (add-ons such as
        self-training train through it)."""
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for images in [0, 1]."""
        return self.logits(x)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """G_f's features, for t-SNE and the proxy A-distance."""
        return self.net.embed(x)

    @torch.no_grad()
    def domain_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        """The trained domain classifier's logit (target = 1), or None if the method has none."""
        return self.net.discriminator(self.embed(x)).squeeze(1) if self.trains_discriminator else None


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == labels).float().mean()


def make_optimizer(config, method: Method) -> torch.optim.Optimizer:
    """SGD (or Adam) over the method's parameter groups (:meth:`Method.param_groups`)."""
    groups = method.param_groups()
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)
