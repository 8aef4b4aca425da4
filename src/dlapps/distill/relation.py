"""Relation-based knowledge: the geometry of a batch (RKD, Park, Kim, Lu & Cho 2019).

Not the teacher's outputs themselves but how the examples of a batch relate in its embedding:
with f_s, f_t the penultimate features of student and teacher (dimensions may differ), and
Huber = smooth L1 (δ = 1), averaged over its terms:

* distance-wise: ψ_D(a, b) = ‖a − b‖₂ / μ, μ the mean distance over the pairs of the batch
  (i ≠ j), so both embeddings are compared at one scale:

      L_D = Huber(ψ_D(f_s,i, f_s,j), ψ_D(f_t,i, f_t,j))   over all (i, j);

* angle-wise: ψ_A(a, b, c) = ⟨e_ba, e_bc⟩, e_ba = (a − b)/‖a − b‖₂, the cosine of the angle at b:

      L_A = Huber(ψ_A(f_s,i, f_s,j, f_s,k), ψ_A(f_t,i, f_t,j, f_t,k))   over all (i, j, k);

* L = CE(y, s) + λ_D · L_D + λ_A · L_A; the paper's metric-learning weights are λ_D = 25,
  λ_A = 50; the defaults here are a fifth of them, 5 and 10 (measured: see DistillConfig).

Both potentials are invariant to scaling (and translating) an embedding, so the student is
asked for the teacher's shape, not its size. The teacher's side has no gradient; as in the
authors' code (and torchdistill's ``RKDLoss``, which tests/test_distill.py compares with),
pairs at distance 0 are left out of μ and a zero difference has a zero unit vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlapps.distill.base import Distillation


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, B) Euclidean distances between the rows of ``e``, 0 on the diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=d.dtype))


def _normalised_distances(e: torch.Tensor) -> torch.Tensor:
    d = pairwise_distances(e)
    return d / d[d > 0].mean()


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L_D: Huber between the mean-normalised pairwise distances of the two embeddings."""
    with torch.no_grad():
        t = _normalised_distances(teacher)
    return F.smooth_l1_loss(_normalised_distances(student), t)


def _cosines(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # [b, a] = e_ba
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()  # [b, a, c] = <e_ba, e_bc>


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L_A: Huber between the cosines of every triplet's angle in the two embeddings."""
    with torch.no_grad():
        t = _cosines(teacher)
    return F.smooth_l1_loss(_cosines(student), t)


class Relation(Distillation):
    """RKD distance-wise and angle-wise losses on the penultimate features."""

    name = "relation"
    description = "relation-based: RKD distance + angle losses (Park et al. 2019)"
    settings = ("rkd_distance", "rkd_angle")
    uses_features = True

    def objective(self, s, t, f_s, f_t, y) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(s, y)
        dist, angle = rkd_distance_loss(f_s, f_t), rkd_angle_loss(f_s, f_t)
        loss = ce + self.config["rkd_distance"] * dist + self.config["rkd_angle"] * angle
        return {"loss": loss, "ce": ce.detach(), "rkd_distance": dist.detach(), "rkd_angle": angle.detach()}
