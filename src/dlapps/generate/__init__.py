"""Generative models side by side: DCGAN / cDCGAN, VAE / cVAE, DDPM / cDDPM, quality measured offline.

config.py (GanConfig, VaeConfig, DdpmConfig) · dcgan.py (G, D, init) · losses.py (D loss,
non-saturating/minimax G loss) · gan.py (the GAN module the engine's Trainer steps: D then G) ·
vae.py (VAE, ELBO, IWAE) · ddpm.py (schedules, Algorithms 1/2, DDIM, guidance, the U-Net) ·
models.py (the registry: each model's trainer, sampler, loader) · data.py (domains in [-1, 1]) ·
metrics.py (classifier FID/KID/IS, label accuracy) · sampling.py (samples, lerp/slerp, class
grid) · experiment.py (models x seeds, resumable) · compare.py (the GAN grid) · report.py
(curves, grids, the spectrum, the page) · cli.py (``dlapps generate``, ``dlapps gan``).
"""

import importlib

# Lazy, so that `dlapps --help` (which imports the command modules) does not import torch.
_EXPORTS = {"Discriminator": "dcgan", "Generator": "dcgan", "build_gan": "dcgan",
            "discriminator_loss": "losses", "generator_loss": "losses", "GanConfig": "config",
            "GAN": "gan", "gan_trainer": "gan", "load_generator": "gan",
            "run_default": "experiment", "run_train": "experiment", "run_variants": "experiment",
            "run_compare": "compare", "VaeConfig": "config", "DdpmConfig": "config", "VAE": "vae",
            "vae_trainer": "vae", "load_vae": "vae", "DDPM": "ddpm", "ddpm_trainer": "ddpm",
            "load_ddpm": "ddpm", "run_models": "experiment", "MODELS": "models", "load_cell": "models"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"dlapps.generate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dlapps.generate' has no attribute {name!r}")
