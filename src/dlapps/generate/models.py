"""The generative models of ``dlapps generate``, by name, and the one way each is trained, sampled
and read back.

=========  ==============  =====================================================
name       config          what it is
=========  ==============  =====================================================
dcgan      GanConfig       DCGAN (gan.py, dcgan.py)
cdcgan     GanConfig       conditional DCGAN: G and D see the class
vae        VaeConfig       VAE, Bernoulli pixels (vae.py)
cvae       VaeConfig       conditional VAE: encoder and decoder see the class
ddpm       DdpmConfig      DDPM, ε-prediction U-Net (ddpm.py)
cddpm      DdpmConfig      class-conditional DDPM, classifier-free guidance
=========  ==============  =====================================================

Every model gives a *sampler* ``g`` with ``g.nz``, ``g.n_classes`` and ``g(z, y)`` → images in
[-1, 1] from z ~ N(0, I): G itself, the VAE's decoder (its Bernoulli mean), or DDIM from
x_T = z. So the metrics, the interpolations (lerp / slerp in z; in x_T for DDPM) and the class
grid are the same code for all of them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dlapps.config import load_config
from dlapps.engine.trainer import Trainer
from dlapps.errors import ConfigError, DataError, UnknownNameError
from dlapps.generate.config import DdpmConfig, GanConfig, VaeConfig

MODELS = ("dcgan", "cdcgan", "vae", "cvae", "ddpm", "cddpm")
CONDITIONAL = ("cdcgan", "cvae", "cddpm")
AnyConfig = GanConfig | VaeConfig | DdpmConfig


def family_of(name: str) -> str:
    """The family of a model name: ``gan``, ``vae`` or ``ddpm``."""
    return "gan" if name.endswith("gan") else name.removeprefix("c")


def family(config: AnyConfig) -> str:
    """``gan``, ``vae`` or ``ddpm``."""
    return "gan" if isinstance(config, GanConfig) else config.model


def model_name(config: AnyConfig) -> str:
    """The registry name of a config: dcgan, cdcgan, cdx (D without y), vae, cvae, ddpm, cddpm."""
    if isinstance(config, GanConfig):
        return ("cdcgan" if config.d_conditional else "cdx") if config.conditional else "dcgan"
    return ("c" if config.conditional else "") + config.model


def parse_models(text: str | list[str]) -> list[str]:
    """``"dcgan,ddpm"`` → ``["dcgan", "ddpm"]``: known names (did-you-mean otherwise), each once."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ConfigError(f"give at least one model: {', '.join(MODELS)}")
    for n in names:
        if n not in MODELS:
            raise UnknownNameError("model", n, MODELS)
    if len(set(names)) != len(names):
        raise ConfigError(f"a model is listed twice: {', '.join(names)}")
    return names


def configure(name: str, base: AnyConfig) -> AnyConfig:
    """``base`` (a config of ``name``'s family) made conditional or not as ``name`` says."""
    return replace(base, conditional=name in CONDITIONAL).validate()


def trainer(config: AnyConfig, data, run_dir: Path, *, progress: bool = True,
            device: torch.device | None = None) -> Trainer:
    """The engine's Trainer of one cell (``fit()`` resumes from the cell's checkpoint)."""
    kind = family(config)
    if kind == "gan":
        from dlapps.generate.gan import gan_trainer

        return gan_trainer(config, data, run_dir, progress=progress, device=device)
    if kind == "vae":
        from dlapps.generate.vae import vae_trainer

        return vae_trainer(config, data, run_dir, progress=progress, device=device)
    from dlapps.generate.ddpm import ddpm_trainer

    return ddpm_trainer(config, data, run_dir, progress=progress, device=device)


def sampler(module: nn.Module) -> nn.Module:
    """The sampler ``g(z, y)`` of a trained module (GAN, VAE or DDPM), in eval mode."""
    g = module.g if hasattr(module, "g") else module.generator()
    return g.eval()


def trained_parameters(module: nn.Module) -> int:
    """Parameters that training updates (G and D; encoder and decoder; the ε-network, not its EMA)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def read_config(cell: Path) -> AnyConfig:
    """A cell's config.json as the config of its family (a GAN's has no ``model`` key)."""
    import json

    path = Path(cell) / "config.json"
    try:
        model = json.loads(path.read_text()).get("model")
    except (OSError, ValueError) as exc:
        raise DataError(f"{cell} holds no readable config.json: not a dlapps generate run") from exc
    classes = {None: GanConfig, "vae": VaeConfig, "ddpm": DdpmConfig}
    if model not in classes:
        raise ConfigError(f"{path}: unknown model {model!r}")
    return load_config(classes[model], path)


def load_cell(cell: Path) -> tuple[nn.Module, AnyConfig, dict]:
    """The trained module of a cell (CPU, eval mode), its config and its checkpoint."""
    config = read_config(cell)
    kind = family(config)
    if kind == "gan":
        from dlapps.generate.gan import load_gan

        return load_gan(cell)
    if kind == "vae":
        from dlapps.generate.vae import load_vae

        return load_vae(cell)
    from dlapps.generate.ddpm import load_ddpm

    return load_ddpm(cell)
