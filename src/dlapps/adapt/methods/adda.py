r"""ADDA: adversarial discriminative domain adaptation (Tzeng et al., CVPR 2017).

Two stages inside one training run, split by progress p (option ``pretrain``, default 0.3):

1. p < pretrain — source encoder M_s (= G_f) and classifier C (= G_y) learn the source::

       min_{M_s, C}  L_cls = E_{(x,y)~S} CE(C(M_s(x)), y)

2. p ≥ pretrain — M_s and C are frozen (they receive no gradient, so the optimizer leaves them
   exactly as they are); a target encoder M_t, initialised from M_s at the boundary, plays a
   GAN against the domain discriminator D (d = 0 source, 1 target), with inverted labels and
   no gradient reversal::

       min_D   L_adv_D = −E_{x~S} log(1 − D(M_s(x))) − E_{x~T} log D(M_t(x))
       min_M_t L_adv_M = −E_{x~T} log(1 − D(M_t(x)))       (target features labelled "source")

   Both terms are summed into the one loss the engine minimises: D's term sees M_t's features
   detached, and M_t's term goes through a copy of D's weights without gradient, so each term
   moves only its own player. The stage flag is a buffer, saved in checkpoints.

Testing uses M_t and the source classifier C: ``predict(x) = C(M_t(x))`` (before stage 2, M_s).

Step size: the paper trains the adversarial stage with Adam at 2e-4; here M_t and D share the run's
SGD schedule with ``lr_mult = adversarial_lr_mult`` (default 0.1). At the full rate (×1) D won
within the first adversarial epoch on mnist5k → mnistm5k (domain accuracy 0.998) and M_t collapsed
(target accuracy 0.50 → 0.14; 0.35 after 12 epochs, below source-only's 0.51; seed 0); at ×0.1
it ends at 0.63, at ×0.01 at 0.53 (same seed, fast preset, 12 epochs).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call

from dlapps.adapt.losses import domain_adversarial_loss
from dlapps.adapt.methods.base import Method, accuracy


class ADDA(Method):
    name = "adda"
    description = "pretrain on source, freeze, adapt a target encoder against a discriminator (GAN)"
    uses_target_images = True
    trains_discriminator = True
    options = {"pretrain": 0.3, "adversarial_lr_mult": 0.1}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.target_features = copy.deepcopy(net.features)
        self.pretrain = float(self.option("pretrain"))
        self.adversarial_lr_mult = float(self.option("adversarial_lr_mult"))
        self.register_buffer("adapting", torch.zeros((), dtype=torch.bool))

    def param_groups(self) -> list[dict]:
        """M_s and C at the schedule's rate; M_t and D (the adversarial stage) at
        ``adversarial_lr_mult`` times it."""
        adversarial = [*self.target_features.parameters(), *self.net.discriminator.parameters()]
        ids = {id(p) for p in adversarial}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest}, {"params": adversarial, "lr_mult": self.adversarial_lr_mult}]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """M_t(x) once the adversarial stage has begun, M_s(x) before."""
        encoder = self.target_features if bool(self.adapting) else self.net.features
        return encoder(self.net.normalize(x))

    def logits(self, x):
        return self.net.classifier(self.encode(x))

    @torch.no_grad()
    def embed(self, x):
        return self.encode(x)

    def forward(self, xs, ys, xt, yt, progress):
        if progress < self.pretrain:
            logits = self.net(xs)
            loss = F.cross_entropy(logits, ys)
            return {"loss": loss, "cls_loss": loss, "train_acc": accuracy(logits, ys)}
        if not bool(self.adapting):  # stage boundary: M_t starts as a copy of M_s
            self.target_features.load_state_dict(self.net.features.state_dict())
            self.adapting.fill_(True)
        with torch.no_grad():
            fs = self.net.embed(xs)
        ft = self.encode(xt)
        d_loss, d_acc = domain_adversarial_loss(self.net.discriminator, torch.cat([fs, ft.detach()]),
                                                len(xs), 1.0, reverse=False)
        frozen = {k: v.detach() for k, v in self.net.discriminator.named_parameters()}
        fooled = functional_call(self.net.discriminator, frozen, (ft,)).squeeze(1)
        m_loss = F.binary_cross_entropy_with_logits(fooled, torch.zeros_like(fooled))
        return {"loss": d_loss + m_loss, "domain_loss": d_loss, "encoder_loss": m_loss,
                "train_domain_acc": d_acc}
