"""The settings of one GAN training run: :class:`GanConfig`, saved as ``config.json``.

``dlapps gan train --config FILE`` (and ``dlapps gan``, ``dlapps gan compare``) read one back
through :func:`dlapps.config.merge`; given options override it. The fingerprint leaves out the
number of epochs, so a finished run can be trained further from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import ClassVar

from dlapps.errors import ConfigError
from dlapps.generate.dcgan import INITS, SIZES
from dlapps.generate.losses import is_nonsaturating


@dataclass
class GanConfig:
    """Everything that defines one GAN training run (saved as ``config.json``)."""

    kind: ClassVar[str] = "generate"

    data: str = "mnist5k"
    size: int = 32
    channels: int = 1
    conditional: bool = False
    d_conditional: bool = True  # False: the cD(x) ablation (G gets y, D does not)
    nz: int = 100
    ngf: int = 32
    ndf: int = 32
    init: str = "dcgan"
    loss: str = "nonsat"
    batch_size: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1_g: float = 0.5
    beta1_d: float = 0.5
    epochs: int = 5
    seed: int = 0

    def validate(self) -> GanConfig:
        if self.size not in SIZES:
            raise ConfigError(f"--size must be one of {SIZES}, got {self.size}")
        if self.init not in INITS:
            raise ConfigError(f"--init must be one of {INITS}, got {self.init!r}")
        is_nonsaturating(self.loss)
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError(f"need epochs >= 1 and batch size >= 2, got {self.epochs}, {self.batch_size}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("beta1_g", "beta1_d"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not self.conditional and not self.d_conditional:
            raise ConfigError("D without y (--cdx, d_conditional=false) only makes sense for a conditional "
                              "GAN (--conditional)")
        return self

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed: everything but the number of epochs."""
        fields = {k: v for k, v in asdict(self).items() if k != "epochs"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
