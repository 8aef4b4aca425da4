"""Self-supervised and unsupervised methods, registered by name (see :mod:`.base` for the
interface). The order is the report's: baselines, pretext tasks, contrastive, clustering."""

from __future__ import annotations

from dlapps.registry import Registry
from dlapps.ssl.autoencoder import DenoisingAE, InpaintingAE
from dlapps.ssl.base import SslMethod
from dlapps.ssl.baselines import Pixels, RandomInit, Supervised
from dlapps.ssl.dac import DAC
from dlapps.ssl.deepcluster import DeepCluster
from dlapps.ssl.jigsaw import Jigsaw
from dlapps.ssl.moco import MoCo
from dlapps.ssl.patch import RelativePatch
from dlapps.ssl.rotation import Rotation
from dlapps.ssl.simclr import SimCLR
from dlapps.ssl.tl_vae import TransferVAE

METHODS: Registry[type[SslMethod]] = Registry("self-supervised method")
for _m in (RandomInit, Pixels, Supervised, Rotation, RelativePatch, Jigsaw, DenoisingAE,
           InpaintingAE, SimCLR, MoCo, DeepCluster, DAC, TransferVAE):
    METHODS.register(_m.name, _m)

__all__ = ["METHODS", "SslMethod"]
