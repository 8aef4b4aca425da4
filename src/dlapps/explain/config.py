"""The settings of each ``dlapps explain`` command, one dataclass per command.

Every class has ``kind = "explain"`` (the kind of run, shared with :mod:`dlapps.config`) and a
``command`` field naming the sub-command, so a run's ``config.json`` says which command made it
and ``--config FILE`` refuses, in one line, a file of another kind of run (``adapt``, ...) or of
another explain command. The options of the command line override the file's values.

The settings are what a run depends on: the model, the images and the method settings. Where the
output goes (``--out``) and progress bars (``-q``) are not settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from dlapps.config import merge
from dlapps.engine.device import DEVICES
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.explain.inputs import DEFAULT_PHOTOS

OFFLINE_MODEL = "efficientnet_lite0"
C = TypeVar("C", bound="ExplainConfig")


@dataclass
class ExplainConfig:
    """What every explain command shares: the network looked into and where it runs."""

    kind: ClassVar[str] = "explain"
    COMMAND: ClassVar[str] = ""

    command: str = ""
    model: str = OFFLINE_MODEL  # a backbone name or a dlapps adapt cell RUN_DIR/<method>-seed<k>
    image_size: int | None = None  # crop size for backbones (None: their own, 224)
    device: str = "auto"

    def validate(self: C) -> C:
        if self.command != self.COMMAND:
            raise ConfigError(f"this is the configuration of `dlapps explain {self.command}`, "
                              f"not of `dlapps explain {self.COMMAND}`")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UnknownNameError("device", self.device, DEVICES)
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image-size must be at least 8 pixels, got {self.image_size}")
        return self

    @staticmethod
    def _need(values: list, what: str) -> None:
        if not values:
            raise ConfigError(f"give {what}")


IMAGES = "images: image files, folders or bundled photos (chelsea, coffee, ...)"


@dataclass
class SaliencyConfig(ExplainConfig):
    """``dlapps explain saliency``: maps and their RISE deletion/insertion AUCs."""

    COMMAND: ClassVar[str] = "saliency"

    command: str = "saliency"
    images: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["vanilla", "smoothgrad", "ig", "gradcam"])
    target: str | None = None  # class explained (name or index); None: each image's prediction
    true_labels: list[str] | None = None  # for the figure; None: the bundled photos' known labels
    rise_steps: int = 24
    patch: int = 1  # RISE tile side in pixels (1: single pixels, as RISE)
    deletion_to: str = "mean"  # what deleted pixels become: mean (RISE) or black

    def validate(self) -> SaliencyConfig:
        from dlapps.explain.metrics import SUBSTRATES
        from dlapps.explain.saliency import METHODS

        super().validate()
        self._need(self.images, IMAGES)
        self._need(self.methods, "at least one saliency method")
        for m in self.methods:
            METHODS.check(m)
        SUBSTRATES.check(self.deletion_to)
        if self.rise_steps < 1 or self.patch < 1:
            raise ConfigError(f"--rise-steps and --patch must be at least 1, got {self.rise_steps}, "
                              f"{self.patch}")
        return self


@dataclass
class FoolConfig(ExplainConfig):
    """``dlapps explain fool``: fooling images and adversarial examples."""

    COMMAND: ClassVar[str] = "fool"

    command: str = "fool"
    images: list[str] = field(default_factory=list)
    target: str | None = None  # class to reach; None: untargeted
    methods: list[str] = field(default_factory=lambda: ["naive"])
    eps: float | None = None  # budget of fgsm/pgd (L∞) or pgd-l2 (L2); None: each attack's own
    epsilons: list[float] = field(default_factory=list)  # success rate at these L∞ ε
    l2_epsilons: list[float] = field(default_factory=list)  # ... and at these L2 ε
    max_iter: int = 100  # iteration budget of naive and deepfool

    def validate(self) -> FoolConfig:
        from dlapps.explain.attacks import ATTACKS

        super().validate()
        self._need(self.images, IMAGES)
        self._need(self.methods, "at least one attack")
        for m in self.methods:
            if ATTACKS[m].needs_target and self.target is None:
                raise ConfigError(f"the {m} fooling attack needs --target (a class name or index)")
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"--eps must be positive, got {self.eps}")
        if self.max_iter < 1:
            raise ConfigError(f"--max-iter must be at least 1, got {self.max_iter}")
        return self


@dataclass
class ClassVisConfig(ExplainConfig):
    """``dlapps explain classvis``: class model visualisation, one run per target and seed."""

    COMMAND: ClassVar[str] = "classvis"

    command: str = "classvis"
    targets: list[str] = field(default_factory=list)
    init: str | None = None  # start from this image instead of noise
    iters: int = 200
    lr: float = 5.0
    l2: float = 1e-3
    blur_every: int = 10
    blur_sigma: float = 0.5
    jitter: int = 16
    seeds: list[int] = field(default_factory=lambda: [0])  # of the noise and the jitter
    snapshots: int = 4  # images kept along the ascent

    def settings(self, seed: int):
        """The :class:`~dlapps.explain.classvis.ClassVisSettings` of one seed."""
        from dlapps.explain.classvis import ClassVisSettings

        return ClassVisSettings(self.iters, self.lr, self.l2, self.blur_every, self.blur_sigma,
                                self.jitter, seed)

    def validate(self) -> ClassVisConfig:
        super().validate()
        self._need(self.targets, "--target: one or more classes (names or indices)")
        self._need(self.seeds, "at least one seed")
        if self.snapshots < 1:
            raise ConfigError(f"snapshots must be at least 1, got {self.snapshots}")
        self.settings(self.seeds[0]).validate()
        return self


@dataclass
class CompareConfig(ExplainConfig):
    """``dlapps explain compare``: the class-visualisation settings as one grid, one parameter
    varied at a time around the defaults (iterations: the snapshots of one run)."""

    COMMAND: ClassVar[str] = "compare"

    command: str = "compare"
    target: str | None = None
    iters: list[int] = field(default_factory=lambda: [25, 50, 100, 200])
    lr: list[float] = field(default_factory=lambda: [1.0, 5.0, 25.0])
    l2: list[float] = field(default_factory=lambda: [0.0, 1e-3, 1e-2])
    blur_every: list[int] = field(default_factory=lambda: [0, 10, 50])
    init: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])

    def base(self, seed: int):
        """The settings every row varies one parameter of."""
        from dlapps.explain.classvis import ClassVisSettings

        return ClassVisSettings(iters=max(self.iters), seed=seed)

    def grid(self) -> dict[str, list[float]]:
        return {"lr": list(self.lr), "l2": list(self.l2), "blur_every": list(self.blur_every)}

    def validate(self) -> CompareConfig:
        super().validate()
        if self.target is None:
            raise ConfigError("give --target: a class (name or index)")
        self._need(self.iters, "--iters: the iteration counts shown")
        self._need(self.seeds, "at least one seed")
        if min(self.iters) < 0:
            raise ConfigError(f"--iters must not be negative, got {self.iters}")
        for seed in self.seeds:
            self.base(seed).validate()
        return self


@dataclass
class ActivationsConfig(ExplainConfig):
    """``dlapps explain activations``: the activation maps of one layer."""

    COMMAND: ClassVar[str] = "activations"

    command: str = "activations"
    images: list[str] = field(default_factory=list)
    layer: str = "first"  # "first" (the first convolution) or a module path
    count: int = 16  # channels shown

    def validate(self) -> ActivationsConfig:
        super().validate()
        self._need(self.images, IMAGES)
        if self.count < 1:
            raise ConfigError(f"--count must be at least 1, got {self.count}")
        return self


@dataclass
class AllConfig(ExplainConfig):
    """``dlapps explain`` alone: each command once on the bundled photos, offline."""

    COMMAND: ClassVar[str] = "all"

    command: str = "all"
    image_size: int | None = 160
    photos: list[str] = field(default_factory=lambda: list(DEFAULT_PHOTOS[:4]))
    classvis_targets: list[str] = field(default_factory=lambda: ["tarantula", "goldfish"])
    classvis_iters: int = 60
    max_iter: int = 100

    def validate(self) -> AllConfig:
        super().validate()
        self._need(self.photos, IMAGES)
        if self.classvis_iters < 1 or self.max_iter < 1:
            raise ConfigError("classvis_iters and max_iter must be at least 1")
        return self


def merge_command(cls: type[C], path: Path | None, overrides: dict[str, Any]) -> C:
    """:func:`dlapps.config.merge` for one explain command; an explain file of another command is
    refused in one line naming both (before its keys are compared)."""
    if path is not None:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError):
            raw = None  # merge says what is wrong with the file
        if (isinstance(raw, dict) and raw.get("kind", cls.kind) == cls.kind
                and raw.get("command", cls.COMMAND) != cls.COMMAND):
            raise ConfigError(f"{path} is the configuration of `dlapps explain {raw['command']}`, not of "
                              f"`dlapps explain {cls.COMMAND}`; give it a config.json written by "
                              f"`dlapps explain {cls.COMMAND}`")
    return merge(cls, path, overrides)
