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
from dlapps.explain.classvis import COMPARE_GRID, ITER_POINTS, ClassVisSettings
from dlapps.explain.inputs import DEFAULT_PHOTOS

OFFLINE_MODEL = "efficientnet_lite0"
C = TypeVar("C", bound="ExplainConfig")
IMAGES = "images: image files, folders or bundled photos (chelsea, coffee, ...)"
CLASSVIS = ClassVisSettings()  # the method's defaults: the one source of ClassVisConfig's


@dataclass
class ExplainConfig:
    """What every explain command shares: the network looked into and where it runs.

    Each subclass sets the default of ``command`` to its sub-command; a dataclass keeps a field's
    default as the class attribute, so ``cls.command`` names the command a class is for."""

    kind: ClassVar[str] = "explain"

    command: str = ""
    model: str = OFFLINE_MODEL  # a backbone name or a dlapps adapt cell RUN_DIR/<method>-seed<k>
    image_size: int | None = None  # crop size for backbones (None: their own, 224)
    device: str = "auto"

    def validate(self: C) -> C:
        """The checks every command shares, then the command's own (:meth:`check`)."""
        if self.command != type(self).command:
            raise ConfigError(f"this is the configuration of `dlapps explain {self.command}`, "
                              f"not of `dlapps explain {type(self).command}`")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UnknownNameError("device", self.device, DEVICES)
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image-size must be at least 8 pixels, got {self.image_size}")
        self.check()
        return self

    def check(self) -> None:
        """The command's own checks; raise :class:`ConfigError`."""

    @staticmethod
    def _need(values: list, what: str) -> None:
        if not values:
            raise ConfigError(f"give {what}")

    @staticmethod
    def _at_least(minimum: int, what: str, *values: int) -> None:
        """``values``, of ``what`` (e.g. "--rise-steps and --patch"), must all be ``minimum`` or more."""
        if min(values) < minimum:
            raise ConfigError(f"{what} must be at least {minimum}, got {', '.join(map(str, values))}")


@dataclass
class ImagesConfig(ExplainConfig):
    """A command that looks at images (given, or the bundled photos')."""

    images: list[str] = field(default_factory=list)

    def check(self) -> None:
        self._need(self.images, IMAGES)


@dataclass
class MethodsConfig(ImagesConfig):
    """A command that computes saliency maps: the methods and their settings."""

    methods: list[str] = field(default_factory=lambda: ["vanilla", "smoothgrad", "ig", "gradcam"])
    target: str | None = None  # class explained (name or index); None: each image's prediction
    reduction: str | None = None  # channels -> map: max-abs, sum, sum-abs, abs-sum; None: each method's own
    baseline: str = "black"  # Integrated Gradients' x̄: black, blurred, uniform (expected gradients)
    steps: int = 32  # IG's Riemann steps (the first of the refinement with a tolerance)
    ig_tolerance: float | None = 0.05  # completeness gap IG refines to; None or 0: exactly `steps`
    ig_max_steps: int = 2592  # 32·3⁴
    ig_max_seconds: float = 600.0  # per batch of images
    n: int = 16  # noisy copies of SmoothGrad / VarGrad
    sigma: float = 0.15  # their noise std, pixel units

    def method_options(self) -> dict[str, Any]:
        """The keyword options of :func:`dlapps.explain.saliency.attribute` (each method takes its own)."""
        return {"steps": self.steps, "baseline": self.baseline, "tolerance": self.ig_tolerance or None,
                "max_steps": self.ig_max_steps, "max_seconds": self.ig_max_seconds, "n": self.n,
                "sigma": self.sigma}

    def check(self) -> None:
        from dlapps.explain.saliency import IG_BASELINES, METHODS, REDUCTIONS

        super().check()
        self._need(self.methods, "at least one saliency method")
        for m in self.methods:
            METHODS.check(m)
        if self.reduction is not None:
            REDUCTIONS.check(self.reduction)
        IG_BASELINES.check(self.baseline)
        self._at_least(1, "--steps", self.steps)
        self._at_least(1, "--n", self.n)
        if self.ig_max_steps < self.steps:
            raise ConfigError(f"--ig-max-steps ({self.ig_max_steps}) is below --steps ({self.steps})")
        if self.sigma < 0 or (self.ig_tolerance or 0) < 0 or not self.ig_max_seconds > 0:
            raise ConfigError(f"--sigma and --ig-tolerance must not be negative and --ig-max-seconds must be "
                              f"positive, got {self.sigma}, {self.ig_tolerance}, {self.ig_max_seconds}")


@dataclass
class SaliencyConfig(MethodsConfig):
    """``dlapps explain saliency``: maps, IG's completeness, and their faithfulness: RISE
    deletion/insertion AUCs, faithfulness correlation and max-sensitivity."""

    command: str = "saliency"
    true_labels: list[str] | None = None  # for the figure; None: the bundled photos' known labels
    rise_steps: int = 24
    patch: int = 1  # RISE tile side in pixels (1: single pixels, as RISE)
    deletion_to: str = "mean"  # what deleted pixels become: mean (RISE) or black
    faithfulness_runs: int = 100  # random subsets of the faithfulness correlation (Quantus: 100)
    faithfulness_subset: int = 224  # pixels per subset (Quantus: 224)
    sensitivity_samples: int = 5  # perturbations of max-sensitivity (Quantus: 200); 0: not measured
    sensitivity_radius: float = 0.2  # their U(−r, r) noise (Quantus: 0.2)

    def check(self) -> None:
        from dlapps.explain.metrics import SUBSTRATES

        super().check()
        SUBSTRATES.check(self.deletion_to)
        self._at_least(1, "--rise-steps, --patch and --faithfulness-subset", self.rise_steps, self.patch,
                       self.faithfulness_subset)
        self._at_least(2, "--faithfulness-runs", self.faithfulness_runs)
        self._at_least(0, "--sensitivity-samples", self.sensitivity_samples)
        if not self.sensitivity_radius > 0:
            raise ConfigError(f"--sensitivity-radius must be positive, got {self.sensitivity_radius}")


@dataclass
class SanityConfig(MethodsConfig):
    """``dlapps explain sanity``: Adebayo et al.'s sanity checks — each method's maps as the
    network's layers are randomised from the top (``model``) and after retraining on permuted labels
    (``data``, digits networks only)."""

    command: str = "sanity"
    methods: list[str] = field(default_factory=lambda: ["vanilla", "smoothgrad", "ig", "gradcam", "edge"])
    checks: list[str] = field(default_factory=lambda: ["model"])
    ig_tolerance: float | None = None  # maps are compared, not summed: IG at exactly `steps`
    max_layers: int = 12  # layers randomised one at a time
    flag_at: float = 0.5  # a method still this rank-similar at full randomisation is flagged
    epochs: int = 30  # of the random-label retraining (data check)
    train_images: int = 2000  # ... on this many training images
    seed: int = 0  # of the re-initialisation and the label permutation

    def check(self) -> None:
        from dlapps.explain.sanity import CHECKS

        super().check()
        self._need(self.checks, "--checks: model and/or data")
        for name in self.checks:
            CHECKS.check(name)
        self._at_least(1, "--max-layers and --epochs", self.max_layers, self.epochs)
        self._at_least(2, "--train-images", self.train_images)
        if not -1 <= self.flag_at <= 1:
            raise ConfigError(f"--flag-at is a rank correlation in [-1, 1], got {self.flag_at}")


@dataclass
class FoolConfig(ImagesConfig):
    """``dlapps explain fool``: fooling images and adversarial examples."""

    command: str = "fool"
    target: str | None = None  # class to reach; None: untargeted
    methods: list[str] = field(default_factory=lambda: ["naive"])
    eps: float | None = None  # budget of fgsm/pgd (L∞) or pgd-l2 (L2); None: each attack's own
    epsilons: list[float] = field(default_factory=list)  # success rate at these L∞ ε
    l2_epsilons: list[float] = field(default_factory=list)  # ... and at these L2 ε
    max_iter: int = 100  # iteration budget of naive and deepfool

    def check(self) -> None:
        from dlapps.explain.attacks import ATTACKS

        super().check()
        self._need(self.methods, "at least one attack")
        for m in self.methods:
            if ATTACKS[m].needs_target and self.target is None:
                raise ConfigError(f"the {m} fooling attack needs --target (a class name or index)")
        if self.eps is not None and not self.eps > 0:
            raise ConfigError(f"--eps must be positive, got {self.eps}")
        self._at_least(1, "--max-iter", self.max_iter)


@dataclass
class ClassVisConfig(ExplainConfig):
    """``dlapps explain classvis``: class model visualisation, one run per target and seed."""

    command: str = "classvis"
    targets: list[str] = field(default_factory=list)
    init: str | None = None  # start from this image instead of noise
    iters: int = CLASSVIS.iters
    lr: float = CLASSVIS.lr
    l2: float = CLASSVIS.l2
    blur_every: int = CLASSVIS.blur_every
    blur_sigma: float = CLASSVIS.blur_sigma
    jitter: int = CLASSVIS.jitter
    seeds: list[int] = field(default_factory=lambda: [0])  # of the noise and the jitter
    snapshots: int = 4  # images kept along the ascent

    def settings(self, seed: int) -> ClassVisSettings:
        """The :class:`~dlapps.explain.classvis.ClassVisSettings` of one seed."""
        return ClassVisSettings(self.iters, self.lr, self.l2, self.blur_every, self.blur_sigma,
                                self.jitter, seed)

    def check(self) -> None:
        self._need(self.targets, "--target: one or more classes (names or indices)")
        self._need(self.seeds, "at least one seed")
        self._at_least(1, "snapshots", self.snapshots)
        self.settings(self.seeds[0]).validate()


@dataclass
class CompareConfig(ExplainConfig):
    """``dlapps explain compare``: the class-visualisation settings as one grid, one parameter
    varied at a time around the defaults (iterations: the snapshots of one run)."""

    command: str = "compare"
    target: str | None = None
    iters: list[int] = field(default_factory=lambda: list(ITER_POINTS))
    lr: list[float] = field(default_factory=lambda: list(COMPARE_GRID["lr"]))
    l2: list[float] = field(default_factory=lambda: list(COMPARE_GRID["l2"]))
    blur_every: list[int] = field(default_factory=lambda: list(COMPARE_GRID["blur_every"]))
    init: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])

    def base(self, seed: int) -> ClassVisSettings:
        """The settings every row varies one parameter of."""
        return ClassVisSettings(iters=max(self.iters), seed=seed)

    def grid(self) -> dict[str, list[float]]:
        return {"lr": list(self.lr), "l2": list(self.l2), "blur_every": list(self.blur_every)}

    def check(self) -> None:
        if self.target is None:
            raise ConfigError("give --target: a class (name or index)")
        self._need(self.iters, "--iters: the iteration counts shown")
        self._need(self.seeds, "at least one seed")
        if min(self.iters) < 0:
            raise ConfigError(f"--iters must not be negative, got {self.iters}")
        for seed in self.seeds:
            self.base(seed).validate()


@dataclass
class ActivationsConfig(ImagesConfig):
    """``dlapps explain activations``: the activation maps of one layer."""

    command: str = "activations"
    layer: str = "first"  # "first" (the first convolution) or a module path
    count: int = 16  # channels shown

    def check(self) -> None:
        super().check()
        self._at_least(1, "--count", self.count)


@dataclass
class AllConfig(ExplainConfig):
    """``dlapps explain`` alone: each command once on the bundled photos, offline."""

    command: str = "all"
    image_size: int | None = 160
    photos: list[str] = field(default_factory=lambda: list(DEFAULT_PHOTOS[:4]))
    classvis_targets: list[str] = field(default_factory=lambda: ["tarantula", "goldfish"])
    classvis_iters: int = 60
    max_iter: int = 100
    sensitivity_samples: int = 2  # max-sensitivity recomputes every map (IG too) this many times

    def check(self) -> None:
        self._need(self.photos, IMAGES)
        self._at_least(1, "classvis_iters and max_iter", self.classvis_iters, self.max_iter)


def merge_command(cls: type[C], path: Path | None, overrides: dict[str, Any]) -> C:
    """:func:`dlapps.config.merge` for one explain command; an explain file of another command is
    refused in one line naming both (before its keys are compared)."""
    if path is not None:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError):
            raw = None  # merge says what is wrong with the file
        if (isinstance(raw, dict) and raw.get("kind", cls.kind) == cls.kind
                and raw.get("command", cls.command) != cls.command):
            raise ConfigError(f"{path} is the configuration of `dlapps explain {raw['command']}`, not of "
                              f"`dlapps explain {cls.command}`; give it a config.json written by "
                              f"`dlapps explain {cls.command}`")
    return merge(cls, path, overrides)
