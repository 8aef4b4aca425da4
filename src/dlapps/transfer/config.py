"""Settings of ``dlapps transfer`` (classifiers on one backbone tap) and of ``dlapps transfer
compare`` (the SVM over backbones x taps), saved as ``config.json`` (kind ``"transfer"``).

``None`` fields take defaults that depend on the data (:meth:`TransferConfig.resolved`): the
offline default (no ``data``) is Fashion-MNIST when installed, else mnist5k, with 100 labelled
images per class at 64 px and 4 epochs of network training; a named dataset uses all its images
at the backbone's own input size and 10 epochs. The resolved config is what a run saves, so
``--config RUN/config.json`` repeats it exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

from dlapps.errors import ConfigError

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
OFFLINE_IMAGE_SIZE = 64  # EfficientNet-Lite0 input of the offline default (28x28 digits upsampled)


def _all_classifiers() -> list[str]:
    from dlapps.transfer.classifiers import CLASSIFIERS

    return CLASSIFIERS.names()


def _check_common(cfg: TransferConfig | CompareConfig) -> None:
    from dlapps.engine.device import resolve_device

    if not cfg.seeds:
        raise ConfigError("give at least one seed")
    for name in ("per_class", "test_per_class"):
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise ConfigError(f"{name.replace('_', '-')} must be >= 0 (0 = all images), got {value}")
    if cfg.image_size is not None and cfg.image_size < 16:
        raise ConfigError(f"image size must be at least 16, got {cfg.image_size}")
    if cfg.folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {cfg.folds}")
    if not cfg.Cs or any(c <= 0 for c in cfg.Cs):
        raise ConfigError(f"C values must be positive, got {cfg.Cs}")
    if cfg.pca is not None and cfg.pca < 1:
        raise ConfigError(f"PCA needs at least 1 component, got {cfg.pca}")
    if cfg.feature_batch < 1:
        raise ConfigError(f"feature batch must be at least 1, got {cfg.feature_batch}")
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        resolve_device(cfg.device)  # the one "unknown device" error


def _resolve_draw(cfg, offline: bool):
    """Per-class counts and input size: the offline default's or all images at native size."""
    default = 100 if offline else 0
    return replace(cfg, per_class=default if cfg.per_class is None else cfg.per_class,
                   test_per_class=default if cfg.test_per_class is None else cfg.test_per_class,
                   image_size=OFFLINE_IMAGE_SIZE if cfg.image_size is None and offline else cfg.image_size)


def _default_data() -> str:
    from dlapps.data import sources

    return "fashion" if sources.debian_fashion() is not None else "mnist5k"


@dataclass
class TransferConfig:
    """What :func:`~dlapps.transfer.experiment.run_transfer` computes."""

    kind: ClassVar[str] = "transfer"

    data: str | None = None  # None: Fashion-MNIST when installed, else mnist5k (offline default)
    backbone: str = "efficientnet_lite0"
    layer: str | None = None  # None: the backbone's default tap
    classifiers: list[str] = field(default_factory=_all_classifiers)
    per_class: int | None = None  # labelled training images per class; 0 = all
    test_per_class: int | None = None  # test images per class; 0 = all
    seeds: list[int] = field(default_factory=lambda: [0])
    image_size: int | None = None  # None: the backbone's own (OFFLINE_IMAGE_SIZE offline)
    Cs: list[float] = field(default_factory=lambda: list(DEFAULT_CS))
    folds: int = 3
    pca: int | None = None
    test_curve: bool = False  # also score every C on test (C-sweep figure only; costs one fit per C)
    epochs: int | None = None  # fine-tune / scratch epochs; None: 4 offline, 10 otherwise
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    batch_size: int = 32
    feature_batch: int = 64
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA while training networks

    def validate(self) -> TransferConfig:
        from dlapps.models.pretrained import BACKBONES
        from dlapps.transfer.classifiers import CLASSIFIERS

        BACKBONES.check(self.backbone)
        if not self.classifiers:
            raise ConfigError("give at least one classifier")
        for name in self.classifiers:
            CLASSIFIERS.check(name)
        _check_common(self)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.lr <= 0 or self.backbone_lr_factor < 0:
            raise ConfigError(f"need lr > 0 and backbone_lr_factor >= 0, got {self.lr} and "
                              f"{self.backbone_lr_factor}")
        if self.batch_size < 2:  # batch norm cannot train on one image
            raise ConfigError(f"batch size must be at least 2, got {self.batch_size}")
        return self

    def resolved(self) -> TransferConfig:
        """Defaults filled in (the offline default when ``data`` is None), validated."""
        offline = self.data is None
        cfg = _resolve_draw(replace(self, data=_default_data() if offline else self.data,
                                    classifiers=list(self.classifiers), seeds=list(self.seeds),
                                    Cs=list(self.Cs)), offline)
        if cfg.epochs is None:
            cfg = replace(cfg, epochs=4 if offline else 10)
        return cfg.validate()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompareConfig:
    """What :func:`~dlapps.transfer.experiment.run_compare` computes: the SVM on every backbone
    x tap (``layers=None``: each backbone's default tap)."""

    kind: ClassVar[str] = "transfer"

    data: str | None = None  # None: the offline default's data, as for TransferConfig
    backbones: list[str] = field(default_factory=lambda: ["efficientnet_lite0"])
    layers: list[str] | None = None
    per_class: int | None = None
    test_per_class: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    image_size: int | None = None
    Cs: list[float] = field(default_factory=lambda: list(DEFAULT_CS))
    folds: int = 3
    pca: int | None = None
    feature_batch: int = 64
    device: str = "auto"

    def validate(self) -> CompareConfig:
        from dlapps.models.pretrained import BACKBONES

        if not self.backbones:
            raise ConfigError("give at least one backbone")
        for name in self.backbones:
            BACKBONES.check(name)
        if self.layers is not None and not self.layers:
            raise ConfigError("give at least one layer (or none for each backbone's default tap)")
        _check_common(self)
        return self

    def resolved(self) -> CompareConfig:
        offline = self.data is None
        cfg = _resolve_draw(replace(self, data=_default_data() if offline else self.data,
                                    backbones=list(self.backbones), seeds=list(self.seeds), Cs=list(self.Cs),
                                    layers=None if self.layers is None else list(self.layers)), offline)
        return cfg.validate()

    def to_dict(self) -> dict:
        return asdict(self)

    def svm(self, seed: int) -> TransferConfig:
        """The settings of one SVM cell."""
        return TransferConfig(data=self.data, classifiers=["svm"], per_class=self.per_class,
                              test_per_class=self.test_per_class, seeds=[seed], image_size=self.image_size,
                              Cs=list(self.Cs), folds=self.folds, pca=self.pca, test_curve=True,
                              feature_batch=self.feature_batch, device=self.device)
