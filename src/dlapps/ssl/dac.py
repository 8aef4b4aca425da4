r"""DAC — Deep Adaptive Image Clustering (Chang, Wang, Meng, Xiang & Pan, ICCV 2017).

Image clustering as binary pairwise classification: are two images in the same cluster? The
network ends in k = number of classes outputs; their softmax, L2-normalised, is the image's
*label feature* l_i (non-negative, unit norm), and the cosine similarity of two label features
S_ij = l_i · l_j ∈ [0, 1] is the predicted probability that i and j belong together. It is
1 only when both put all their mass on the same output, so at the optimum the label features
are one-hot and the cluster of an image is argmax l_i (:meth:`DAC.cluster_ids`).

Pairs are labelled by the network itself, adaptively: with thresholds

    u(λ) = 0.95 − λ,    l(λ) = 0.455 + 0.1 λ          (the paper's values; :func:`thresholds`)

a pair is *similar* (r_ij = 1) when S_ij > u(λ), *dissimilar* (r_ij = 0) when S_ij < l(λ), and
not selected (v_ij = 0) in between (:func:`select_pairs`). The objective over a batch is

    E(θ, λ) = Σ_ij v_ij BCE(r_ij, S_ij) / Σ_ij v_ij + u(λ) − l(λ),
    BCE(r, s) = −r log s − (1 − r) log(1 − s)           (s clamped into (ε, 1 − ε))

r and v are targets (no gradient flows through the thresholding). The pairs run over i ≠ j of
the batch: an image paired with itself has S_ii = 1 always and teaches nothing. S and the
cross-entropy are computed in float32 outside autocast (bf16 cannot tell 0.95 from 0.953, and
1 − ε would round to 1).

**λ** starts at 0 — only very confident pairs are used, the curriculum's easy examples — and the
paper lowers E by gradient descent on λ: ∂(u − l)/∂λ = −1.1, so λ grows by 1.1 η = 0.0099 per
update (η = 0.009), linearly, until u(λ) = l(λ) at λ = 0.45, when every pair is labelled and
training stops. Our runs have a fixed length instead, so λ is tied to progress:
λ = 0.45 · t, t ∈ [0, 1]. That is the paper's linear schedule rescaled to span the run, however
long: a per-step growth of 0.0099 would reach u = l after 46 steps (a fraction of one epoch),
and a per-epoch one would stay near λ = 0 over a run of a few epochs. The authors' released
MNIST code (vector-1127/DAC) does the same: its threshold falls linearly over the run's epochs.
λ depends on t alone, so nothing needs checkpointing. Logged: ``loss`` (E, penalty included:
the penalty has no gradient in θ), ``pair_loss`` (without it), ``selected`` (fraction of the
pairs i ≠ j selected), ``lambda``, ``u``, ``l``.

**The head**: encoder features (D) → Linear(D, hidden) → BN → ReLU → Linear(hidden, k) → BN →
softmax → L2 normalisation (``hidden`` = 0: Linear(D, k) → BN). The batch normalisation of the
logits follows the authors' code (their last layers are Dense → BN → ReLU → softmax); without
it a fresh network's softmax outputs are nearly uniform, every S_ij is close to 1 and the first
steps teach "everything is similar": measured on 256 random images with a fresh Encoder(1, 8),
31% of the pairs had S > 0.95 and none S < 0.455 without it, against 0.4% and 27% with it.
Option ``clusters`` (0: the true number of classes, as the paper) sets k.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError
from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod
from dlapps.ssl.deepcluster import whole

#: λ where u(λ) = l(λ): 0.95 − λ = 0.455 + 0.1 λ
LAMBDA_MAX = 0.45
#: the similarity is clamped into (EPS, 1 − EPS) inside the cross-entropy
EPS = 1e-6


def thresholds(lam: float) -> tuple[float, float]:
    """(u(λ), l(λ)) = (0.95 − λ, 0.455 + 0.1 λ): the similar / dissimilar thresholds."""
    return 0.95 - lam, 0.455 + 0.1 * lam


def select_pairs(sim: torch.Tensor, u: float, l: float) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: E741
    """Labels and selection of pairs from similarities S (``sim``): r = 1[S > u];
    v = 1[S > u or S < l] (pairs in between are not selected). Once u ≤ l (λ ≥ 0.45) every pair
    is selected, labelled r = 1[S > u]. Both float tensors of S's shape, without gradient."""
    sim = sim.detach()
    similar = sim > u
    chosen = torch.ones_like(similar) if u <= l else similar | (sim < l)
    return similar.to(sim.dtype), chosen.to(sim.dtype)


class DAC(SslMethod):
    name = "dac"
    description = "pairwise same-cluster classification on self-selected confident pairs (Chang et al. 2017)"
    family = "clustering"
    options = {"clusters": 0, "hidden": 128}

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        k, hidden = options["clusters"], options["hidden"]
        if not whole(k) or k < 0 or k == 1:
            raise ConfigError(f"dac.clusters must be 0 (= the number of classes) or a whole number ≥ 2, "
                              f"got {k}")
        if not whole(hidden) or hidden < 0:
            raise ConfigError(f"dac.hidden must be a whole number ≥ 0 (0: a linear head), got {hidden}")

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.k = int(self.option("clusters")) or info.num_classes
        hidden = int(self.option("hidden"))
        layers: list[nn.Module] = []
        d = encoder.dim
        if hidden:
            layers += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            d = hidden
        layers += [nn.Linear(d, self.k), nn.BatchNorm1d(self.k)]
        self.head = nn.Sequential(*layers)

    def label_features(self, x: torch.Tensor) -> torch.Tensor:
        """l_i = softmax(logits) / ‖softmax(logits)‖ (B, k), float32."""
        return F.normalize(self.head(self.encoder(x)).float().softmax(1), dim=1)

    @torch.no_grad()
    def cluster_ids(self, x: torch.Tensor) -> torch.Tensor:
        """The cluster of each image: argmax of the head's logits (B,)."""
        return self.head(self.encoder(x)).argmax(1)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        lam = LAMBDA_MAX * min(max(float(progress), 0.0), 1.0)
        u, l = thresholds(lam)  # noqa: E741
        f = self.label_features(x)
        with torch.autocast(f.device.type, enabled=False):  # thresholds near 1 need float32, not bf16
            S = f.float() @ f.float().T
            r, v = select_pairs(S, u, l)
            off = ~torch.eye(len(S), dtype=torch.bool, device=S.device)
            v = v * off
            s = S.clamp(EPS, 1 - EPS)
            bce = -(r * s.log() + (1 - r) * (1 - s).log())
        n = v.sum()
        pair_loss = (bce * v).sum() / n.clamp_min(1.0)
        return {"loss": pair_loss + (u - l), "pair_loss": pair_loss,
                "selected": n / off.sum().clamp_min(1), "lambda": lam, "u": u, "l": l}
