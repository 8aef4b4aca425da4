r"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016: "Unsupervised learning of visual
representations by solving jigsaw puzzles").

The image is cut into the 9 tiles of a 3×3 grid; the tiles are shuffled by a permutation π drawn
from a fixed set {π_1, ..., π_P}, every tile goes through the shared encoder f on its own (the
paper's context-free network), and a head h on the concatenated features, in the shuffled
order, names the permutation::

    L = (1/B) Σ_b CE(j_b, h([f(T_b,π_j(1)), ..., f(T_b,π_j(9))])),   π_j = the set's j_b-th row

(position i of the puzzle shows tile π(i); :func:`shuffle_tiles`). Solving it needs to know
what the parts of an object are and how they sit together; because each tile is encoded alone,
the encoder cannot match edges across tiles.

**The permutation set** (:func:`permutation_set`) is chosen so that any two permutations differ
in many positions (Hamming distance d(π, π') = #{i : π(i) ≠ π'(i)}): greedily, starting from one
permutation drawn at random, add each time the candidate among all 9! = 362,880 whose *minimum*
distance to the permutations already chosen is largest (farthest-point selection, vectorised
over all candidates with numpy: about 0.4 s for 64 on one core, most of it listing the 9!
candidates; 0.9 s for 1000). Noroozi et al.'s Algorithm 1 (and their released code) adds
instead the candidate with the largest *average* distance to the chosen set (D̄ = 1ᵀD); the
max-min rule guarantees a minimum gap between any two classes, which keeps the task free of
near-duplicate answers: 64 permutations are ≥ 7 apart (of 9), 100 are ≥ 6 apart, where 64
random ones come within 4. The set is deterministic (its own numpy generator, seed 2016,
independent of the run's seed, so every run and a resumed one solve the same puzzles) and
cached (:func:`functools.cache`).

Options (``jigsaw.*``):

* ``permutations`` P (default 64; 2..1000): the paper found transfer to improve with the set's
  size (up to 1000) and minimum distance, but a run here lasts about a minute on two CPU cores:
  with 1000 classes each sees a few dozen examples before the end, and the head learns little.
  64 classes (min distance 7) are learnable in that budget.
* ``jitter`` (default 1 px): tiles of side ⌊S/3⌋ − jitter placed at a random offset in their
  cell (and the grid at a random origin), as the paper's 64-px tiles in 75-px cells, so that
  tile borders do not line up; 28 px images give 8-px tiles.
* ``hidden`` (default 512): the head is Linear(9D → hidden) → BN → ReLU → Linear(hidden → P).

Cost: the 9 tiles of every image go through the encoder in one call of 9B tiles of 8×8
(576 px per image, less than one 28×28 image's 784).

A shortcut to know of: on centred objects (digits, Fashion-MNIST) the border tiles are mostly
background, so each tile's brightness alone says much about where it belongs, and the puzzle is
solved fast (on 96 upscaled sklearn digits, 64 permutations: ~99% within 25 Adam steps).
Noroozi et al. normalise each tile's mean and standard deviation against such low-level cues;
that is not done here, since the encoder is judged on whole images in [0, 1] and would be
trained on tiles on another scale.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod, check_whole
from dlapps.ssl.patch import grid_tiles, require_grid
from dlapps.ssl.rotation import mlp_head

#: the largest permutation set a user may ask for (the paper's largest)
MAX_PERMUTATIONS = 1000
#: the permutation set's own seed (not the run's: every run solves the same puzzles)
PERMUTATION_SEED = 2016
TILES = 9


@functools.cache
def _permutation_array(n: int, grid: int) -> np.ndarray:
    candidates = np.array(list(itertools.permutations(range(grid))), dtype=np.int8)
    columns = np.ascontiguousarray(candidates.T)  # (grid, grid!): one row per position

    def distance(j: int) -> np.ndarray:  # Hamming distance of every candidate to candidate j
        same = np.zeros(len(candidates), dtype=np.int8)
        for i in range(grid):
            same += columns[i] == columns[i, j]
        return grid - same

    chosen = [int(np.random.default_rng(PERMUTATION_SEED).integers(len(candidates)))]
    nearest = distance(chosen[0])  # min distance of each candidate to the chosen set (0: chosen)
    for _ in range(n - 1):
        chosen.append(int(nearest.argmax()))  # ties: the first in lexicographic order
        np.minimum(nearest, distance(chosen[-1]), out=nearest)
    result = candidates[chosen].astype(np.int64)
    result.setflags(write=False)
    return result


def permutation_set(n: int, grid: int = TILES) -> torch.Tensor:
    """n permutations of range(grid), (n, grid) LongTensor, chosen greedily for maximal minimum
    Hamming distance (see the module docstring); the same n gives the same set in every run, and
    a smaller set is the start of a larger one."""
    if not 1 <= n <= math.factorial(grid):
        raise ValueError(f"cannot choose {n} distinct permutations of {grid} items")
    return torch.from_numpy(_permutation_array(n, grid).copy())


def shuffle_tiles(tiles: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Tiles (N, T, ...) put in the order of ``perm`` (N, T) (or one (T,) for all): position i
    of the result holds tile perm[i]. ``shuffle_tiles(shuffle_tiles(t, p), p.argsort(-1))`` is t."""
    perm = perm.to(tiles.device).expand(tiles.shape[0], -1)
    rows = torch.arange(tiles.shape[0], device=tiles.device)[:, None]
    return tiles[rows, perm]


class Jigsaw(SslMethod):
    name = "jigsaw"
    description = "name the permutation of 3×3 shuffled tiles (Noroozi & Favaro 2016)"
    family = "pretext"
    options = {"permutations": 64, "jitter": 1, "hidden": 512}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.jitter = int(self.option("jitter"))
        # a buffer that follows the method to its device; not saved: the set is rebuilt the same
        self.register_buffer("perms", permutation_set(int(self.option("permutations"))), persistent=False)
        self.head = mlp_head(TILES * encoder.dim, int(self.option("hidden")), len(self.perms))

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        check_whole(cls.name, "permutations", options.get("permutations"), 2, MAX_PERMUTATIONS,
                    hint="; e.g. --option jigsaw.permutations=64")
        check_whole(cls.name, "jitter", options.get("jitter"), 0, unit=" of pixels")
        check_whole(cls.name, "hidden", options.get("hidden"), 1)
        require_grid(cls.name, size, options["jitter"], "jitter")

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        tiles = grid_tiles(x, self.jitter)  # (B, 9, C, t, t)
        label = torch.randint(0, len(self.perms), (len(x),)).to(x.device)
        puzzle = shuffle_tiles(tiles, self.perms[label])
        features = self.encoder(puzzle.flatten(0, 1))  # (9B, D), tile order kept per image
        logits = self.head(features.view(len(x), -1))
        loss = F.cross_entropy(logits, label)
        return {"loss": loss, "pretext_acc": (logits.argmax(1) == label).float().mean()}
