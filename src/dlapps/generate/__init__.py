"""GANs: DCGAN and conditional DCGAN, their ablations, and quality measured offline.

dcgan.py (G, D, init) · losses.py (D loss, non-saturating/minimax G loss) · data.py (domains in
[-1, 1]) · train.py (the two-optimizer loop on the engine's parts) · metrics.py (classifier
FID/KID/IS, label accuracy) · sampling.py (samples, lerp/slerp, class grid) · experiment.py
(variants x seeds, resumable) · ablate.py (the grid) · figures.py (curves, grids, report).
"""

from dlapps.generate.dcgan import Discriminator, Generator, build_gan
from dlapps.generate.losses import discriminator_loss, generator_loss
from dlapps.generate.train import GanConfig, GanTrainer, load_generator

__all__ = ["Discriminator", "GanConfig", "GanTrainer", "Generator", "build_gan", "discriminator_loss",
           "generator_loss", "load_generator"]
