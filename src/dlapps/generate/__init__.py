"""GANs: DCGAN and conditional DCGAN, their comparisons, and quality measured offline.

config.py (GanConfig) · dcgan.py (G, D, init) · losses.py (D loss, non-saturating/minimax G
loss) · gan.py (the GAN module the engine's Trainer steps: D then G) · data.py (domains in
[-1, 1]) · metrics.py (classifier FID/KID/IS, label accuracy) · sampling.py (samples,
lerp/slerp, class grid) · experiment.py (variants x seeds, resumable) · compare.py (the grid) ·
report.py (curves, grids, the page) · cli.py (``dlapps gan``).
"""

import importlib

# Lazy, so that `dlapps --help` (which imports the command modules) does not import torch.
_EXPORTS = {"Discriminator": "dcgan", "Generator": "dcgan", "build_gan": "dcgan",
            "discriminator_loss": "losses", "generator_loss": "losses", "GanConfig": "config",
            "GAN": "gan", "gan_trainer": "gan", "load_generator": "gan",
            "run_default": "experiment", "run_train": "experiment", "run_variants": "experiment",
            "run_compare": "compare"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"dlapps.generate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dlapps.generate' has no attribute {name!r}")
