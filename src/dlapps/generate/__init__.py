"""GANs: DCGAN and conditional DCGAN, their ablations, and quality measured offline.

dcgan.py (G, D, init) · losses.py (D loss, non-saturating/minimax G loss) · data.py (domains in
[-1, 1]) · train.py (the two-optimizer loop on the engine's parts) · metrics.py (classifier
FID/KID/IS, label accuracy) · sampling.py (samples, lerp/slerp, class grid) · experiment.py
(variants x seeds, resumable) · ablate.py (the grid) · figures.py (curves, grids, report).
"""

import importlib

# Lazy, so that `dlapps --help` (which imports the command modules) does not import torch.
_EXPORTS = {"Discriminator": "dcgan", "Generator": "dcgan", "build_gan": "dcgan",
            "discriminator_loss": "losses", "generator_loss": "losses",
            "GanConfig": "train", "GanTrainer": "train", "load_generator": "train"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"dlapps.generate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dlapps.generate' has no attribute {name!r}")
