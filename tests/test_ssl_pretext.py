"""The pretext-task methods of ``dlapps ssl``: rotation, relative patch position, jigsaw, and the
denoising / inpainting autoencoders.

Labels are checked against the transformation actually applied (hand-made images whose pixels
encode their position), the jigsaw set against its promised Hamming distance, each method's
forward for a finite loss whose gradient reaches the encoder, a few Adam steps on real digits
for learning, and ``check`` for refusing what cannot run.
"""

from __future__ import annotations

import itertools
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError
from dlapps.ssl.autoencoder import (
    Decoder,
    DenoisingAE,
    InpaintingAE,
    add_noise,
    hole_side,
    random_square_mask,
)
from dlapps.ssl.base import MIN_SIDE, Encoder, PretrainInfo
from dlapps.ssl.jigsaw import Jigsaw, _permutation_array, permutation_set, shuffle_tiles
from dlapps.ssl.patch import NEIGHBOURS, RelativePatch, grid_tiles, sample_patches
from dlapps.ssl.rotation import Rotation, rotate_batch, rotation_labels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHODS = (Rotation, RelativePatch, Jigsaw, DenoisingAE, InpaintingAE)


def make(method, channels: int = 1, size: int = 28, width: int = 8, **options):
    config = types.SimpleNamespace(method_options={method.name: options} if options else {})
    info = PretrainInfo(n_images=64, channels=channels, size=size, num_classes=10)
    return method(Encoder(channels, width), info, config)


def capture_encoder_input(method) -> list[torch.Tensor]:
    """The batches the method's encoder is called with, in order."""
    seen: list[torch.Tensor] = []
    method.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


def position_image(n: int, channels: int, size: int) -> torch.Tensor:
    """n copies of an image whose channel 0 holds (i·size + j) / (size² − 1) at pixel (i, j)
    (channel c > 0: 1 − that), so a patch's top-left pixel says where it was cut."""
    pos = torch.arange(size * size, dtype=torch.float64).view(size, size) / (size * size - 1)
    chans = [pos] + [1 - pos] * (channels - 1)
    return torch.stack(chans)[None].expand(n, -1, -1, -1).clone()


def top_left(patches: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.round(patches[..., 0, 0, 0] * (size * size - 1)).long()
    return v // size, v % size


# --- rotation ----------------------------------------------------------------------------------


def test_rotate_batch_matches_rot90_and_hand_indices():
    img = torch.arange(9.0).view(1, 3, 3)
    x = torch.stack([torch.cat([img, img + 10]) for _ in range(4)])  # (4, 2, 3, 3), asymmetric
    k = torch.tensor([0, 1, 2, 3])
    out = rotate_batch(x, k)
    hand = {0: [[0, 1, 2], [3, 4, 5], [6, 7, 8]],
            1: [[2, 5, 8], [1, 4, 7], [0, 3, 6]],  # a quarter turn counter-clockwise
            2: [[8, 7, 6], [5, 4, 3], [2, 1, 0]],
            3: [[6, 3, 0], [7, 4, 1], [8, 5, 2]]}
    for r in range(4):
        assert torch.equal(out[r, 0], torch.tensor(hand[r], dtype=torch.float32))
        assert torch.equal(out[r, 1], out[r, 0] + 10)
        assert torch.equal(out[r], torch.rot90(x[r], r, dims=(1, 2)))


def test_rotating_back_by_the_label_recovers_the_image():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 12, 12)
    k = rotation_labels(16, all_rotations=False)
    assert k.dtype == torch.long and set(k.tolist()) <= {0, 1, 2, 3}
    turned = rotate_batch(x, k)
    for b in range(16):
        assert torch.equal(turned[b], torch.rot90(x[b], int(k[b]), dims=(1, 2)))
    assert torch.equal(rotate_batch(turned, (4 - k) % 4), x)
    assert rotation_labels(3, all_rotations=True).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="square"):
        rotate_batch(torch.rand(2, 1, 8, 10), torch.tensor([0, 1]))


@pytest.mark.parametrize("all_rotations", [False, True])
def test_rotation_method_is_shown_the_rotations_it_is_scored_on(all_rotations):
    m = make(Rotation, all_rotations=all_rotations)
    seen = capture_encoder_input(m)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(3)
    k = rotation_labels(6, all_rotations)
    torch.manual_seed(3)
    out = m(x, torch.arange(6), 0.0)
    batch = x.repeat(4, 1, 1, 1) if all_rotations else x
    assert seen[0].shape[0] == (24 if all_rotations else 6)
    assert torch.equal(seen[0], rotate_batch(batch, k))
    assert 0.0 <= float(out["pretext_acc"]) <= 1.0


# --- relative patch position -------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "size", "gap"), [(1, 28, 1), (3, 32, 2), (1, 27, 0)])
def test_relative_patch_label_is_the_neighbours_position(channels, size, gap):
    torch.manual_seed(0)
    x = position_image(400, channels, size)
    centre, neighbour, label = sample_patches(x, gap)
    s, p = size // 3, size // 3 - gap
    assert centre.shape == neighbour.shape == (400, channels, p, p)
    assert set(label.tolist()) == set(range(8))  # every neighbour gets drawn
    for patch in (centre, neighbour):  # patches are contiguous windows of the image
        i, j = top_left(patch, size)
        window = (i[:, None, None] + torch.arange(p)[:, None]) * size + j[:, None, None] + torch.arange(p)
        assert torch.allclose(patch[:, 0], window.double() / (size * size - 1))
        if channels > 1:
            assert torch.allclose(patch[:, 1:], 1 - patch[:, :1].expand(-1, channels - 1, -1, -1))
    (ci, cj), (ni, nj) = top_left(centre, size), top_left(neighbour, size)
    cell = torch.tensor(NEIGHBOURS)[label]
    drow, dcol = cell // 3 - 1, cell % 3 - 1
    # the neighbour sits one cell (s px) away in the labelled direction, give or take the jitter
    assert torch.all((ni - ci - drow * s).abs() <= gap) and torch.all((nj - cj - dcol * s).abs() <= gap)
    # the centre patch is in the centre cell of a grid placed inside the image
    assert torch.all((ci >= s) & (ci + p <= size - s)) and torch.all((cj >= s) & (cj + p <= size - s))


def test_grid_tiles_are_in_raster_order_inside_their_cells():
    torch.manual_seed(1)
    size, gap = 29, 1
    s, p = size // 3, size // 3 - gap
    tiles = grid_tiles(position_image(50, 1, size), gap)
    assert tiles.shape == (50, 9, 1, p, p)
    i, j = top_left(tiles, size)
    origin_i, origin_j = i[:, :1], j[:, :1]  # tile 0's cell starts at the grid's origin (± jitter)
    cell = torch.arange(9)
    assert torch.all((i - (cell // 3) * s - origin_i).abs() <= gap)
    assert torch.all((j - (cell % 3) * s - origin_j).abs() <= gap)
    assert torch.all(i + p <= size) and torch.all(j + p <= size)


def test_relative_patch_method_encodes_centre_and_neighbour_once_each():
    m = make(RelativePatch)
    seen = capture_encoder_input(m)
    x = torch.rand(5, 1, 28, 28)
    torch.manual_seed(4)
    centre, neighbour, _ = sample_patches(x, 1)
    torch.manual_seed(4)
    m(x, torch.arange(5), 0.0)
    assert len(seen) == 1 and torch.equal(seen[0], torch.cat([centre, neighbour]))


# --- jigsaw ------------------------------------------------------------------------------------


def hamming(p: torch.Tensor) -> torch.Tensor:
    d = (p[:, None, :] != p[None, :, :]).sum(-1)
    return d + 99 * torch.eye(len(p), dtype=d.dtype)  # the diagonal out of the minimum


def test_permutation_set_is_distinct_far_apart_and_fixed():
    perms = permutation_set(64)
    assert perms.shape == (64, 9) and perms.dtype == torch.long
    assert torch.equal(perms.sort(1).values, torch.arange(9).expand(64, -1))  # each a permutation
    assert len({tuple(r) for r in perms.tolist()}) == 64
    assert hamming(perms).min() == 7  # the promised minimum distance (module docstring)
    g = torch.Generator().manual_seed(0)
    random_set = torch.stack([torch.randperm(9, generator=g) for _ in range(64)])
    assert hamming(perms).min() > hamming(random_set).min()
    assert hamming(permutation_set(100)).min() == 6
    # a smaller set is the start of a larger one; the run's seed plays no part; cached copies
    # cannot be corrupted by a caller
    assert torch.equal(permutation_set(10), perms[:10])
    torch.manual_seed(123)
    perms[0] = 0
    assert torch.equal(torch.from_numpy(_permutation_array.__wrapped__(64, 9).copy()), permutation_set(64))
    small = permutation_set(24, grid=4)  # all of 4!: every permutation once
    assert len({tuple(r) for r in small.tolist()}) == 24
    with pytest.raises(ValueError):
        permutation_set(25, grid=4)


def test_farthest_point_rule_on_a_small_grid():
    """Each permutation added is at the largest possible minimum distance from those before it."""
    perms = permutation_set(12, grid=5)
    every = torch.tensor(list(itertools.permutations(range(5))))
    for n in range(1, 12):
        nearest = (every[:, None, :] != perms[None, :n, :]).sum(-1).min(1).values
        assert (perms[n] != perms[:n]).sum(-1).min() == nearest.max()


def test_shuffle_then_unshuffle_with_the_labelled_permutation_recovers_the_tiles():
    torch.manual_seed(0)
    perms = permutation_set(64)
    tiles = grid_tiles(torch.rand(32, 3, 28, 28), 1)
    label = torch.randint(0, 64, (32,))
    puzzle = shuffle_tiles(tiles, perms[label])
    for b in range(3):  # position i shows tile perm[i]
        for i in range(9):
            assert torch.equal(puzzle[b, i], tiles[b, perms[label[b], i]])
    assert torch.equal(shuffle_tiles(puzzle, perms[label].argsort(-1)), tiles)
    assert not torch.equal(puzzle, tiles)
    ids = torch.arange(9.0).view(1, 9, 1).expand(2, -1, -1)  # one permutation for the whole batch
    assert torch.equal(shuffle_tiles(ids, perms[5])[:, :, 0], perms[5].float().expand(2, -1))


def test_jigsaw_method_encodes_the_puzzle_of_its_label():
    m = make(Jigsaw, permutations=16)
    seen = capture_encoder_input(m)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(5)
    tiles = grid_tiles(x, 1)
    label = torch.randint(0, 16, (4,))
    torch.manual_seed(5)
    m(x, torch.arange(4), 0.0)
    assert len(seen) == 1 and seen[0].shape == (36, 1, 8, 8)
    assert torch.equal(seen[0], shuffle_tiles(tiles, permutation_set(16)[label]).flatten(0, 1))
    assert "perms" not in m.state_dict()  # rebuilt, not checkpointed


# --- autoencoders ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 28, 30, 32])
def test_decoder_reads_a_code_and_draws_an_image_of_the_input_size(size):
    dec = Decoder(dim=32, channels=3, size=size)
    y = dec(torch.randn(5, 32))
    assert y.shape == (5, 3, size, size) and torch.all((y > 0) & (y < 1))


def test_corruptions():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 16, 16)
    g = add_noise(x, "gaussian", sigma=0.3)
    assert g.min() >= 0 and g.max() <= 1 and 0.2 < (g - x).std() < 0.3  # clipping trims σ a little
    m = add_noise(x, "mask", drop=0.25)
    zeroed = (m == 0).all(1)  # whole pixels, all channels together
    assert torch.equal(m, x * (~zeroed)[:, None]) and abs(zeroed.float().mean() - 0.25) < 0.03
    mask = random_square_mask(200, 28, 9)
    assert mask.shape == (200, 1, 28, 28) and torch.all(mask.sum((1, 2, 3)) == 81)
    rows, cols = mask.any(3)[:, 0], mask.any(2)[:, 0]  # a 9×9 square: 9 consecutive rows and columns
    assert torch.all(rows.sum(1) == 9) and torch.all(cols.sum(1) == 9)
    assert rows[:, 0].any() and rows[:, -1].any()  # reaches both borders over 200 draws
    assert hole_side(28, 0.33) == 9 and hole_side(32, 0.33) == 11


class ConstantDecoder(nn.Module):
    def __init__(self, value: float, size: int):
        super().__init__()
        self.value, self.size, self.seen = value, size, []

    def forward(self, z):
        self.seen.append(z.shape)
        return torch.full((len(z), 1, self.size, self.size), self.value)


def test_inpainting_fills_the_hole_with_grey_and_weights_the_loss_on_it():
    m = make(InpaintingAE, outside_weight=0.25)
    seen = capture_encoder_input(m)
    m.decoder = ConstantDecoder(0.5, 28)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(6)
    mask = random_square_mask(6, 28, 9)
    torch.manual_seed(6)
    out = m(x, torch.arange(6), 0.0)
    assert torch.equal(seen[0], torch.where(mask, 0.5, x))
    assert m.decoder.seen == [torch.Size([6, m.encoder.dim])]  # the decoder reads the pooled code only
    err = (0.5 - x) ** 2
    hole, outside = err[mask].mean(), err[~mask].mean()
    assert torch.allclose(out["recon_mse"], hole)
    assert torch.allclose(out["loss"], hole + 0.25 * outside)


def test_denoising_reconstructs_the_clean_image_from_the_noisy_one():
    m = make(DenoisingAE, noise="mask", drop=0.5)
    seen = capture_encoder_input(m)
    m.decoder = ConstantDecoder(0.25, 28)
    x = torch.rand(6, 1, 28, 28)
    torch.manual_seed(7)
    noisy = add_noise(x, "mask", drop=0.5)
    torch.manual_seed(7)
    out = m(x, torch.arange(6), 0.0)
    assert torch.equal(seen[0], noisy)
    assert torch.allclose(out["loss"], ((0.25 - x) ** 2).mean()) and "pretext_acc" not in out


# --- every method ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_forward_gives_a_finite_loss_whose_gradient_reaches_the_encoder(method, channels, size):
    torch.manual_seed(0)
    method.check(dict(method.options), size)
    m = make(method, channels, size)
    out = m(torch.rand(8, channels, size, size), torch.arange(8), 0.5)
    loss = out["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    key = "recon_mse" if method in (DenoisingAE, InpaintingAE) else "pretext_acc"
    assert out[key].dtype == torch.float32 and torch.isfinite(out[key])
    assert method.family == "pretext" and method.name and method.description


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """96 real handwritten digits (sklearn's, 8×8) upscaled to 28×28, in [0, 1]."""
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images[:96], dtype=torch.float32)[:, None] / 16
    return F.interpolate(x, size=28, mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_a_few_adam_steps_learn_the_pretext_task(method, digits):
    torch.manual_seed(0)
    m = make(method)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    history = []
    for step in range(25):
        out = m(digits, torch.arange(len(digits)), step / 25)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append((out["loss"].item(), float(out.get("pretext_acc", out.get("recon_mse")))))
    first, last = (torch.tensor(h).mean(0) for h in (history[:5], history[-5:]))
    assert last[0] < 0.75 * first[0]  # loss
    if method in (DenoisingAE, InpaintingAE):
        assert last[1] < 0.75 * first[1]  # recon_mse
    else:
        assert last[1] > first[1] + 0.15  # pretext_acc


# --- check -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_check_accepts_the_defaults(method):
    for size in (28, 32, 64):
        method.check(dict(method.options), size)


@pytest.mark.parametrize(("method", "size", "message"), [
    (RelativePatch, 16, r"relative-patch needs images of side ≥ 27 .* got 16; use --image-size 28"),
    (RelativePatch, 26, r"side ≥ 27"),
    (Jigsaw, 24, r"jigsaw needs images of side ≥ 27 .* got 24; use --image-size 28"),
    (Rotation, MIN_SIDE - 1, r"side ≥ 8"),
    (DenoisingAE, 4, r"side ≥ 8"),
    (InpaintingAE, 6, r"side ≥ 8"),
])
def test_check_refuses_a_side_too_small(method, size, message):
    with pytest.raises(ConfigError, match=message):
        method.check(dict(method.options), size)


@pytest.mark.parametrize(("method", "options", "message"), [
    (Rotation, {"all_rotations": "yes"}, "all_rotations must be true or false"),
    (Rotation, {"hidden": -1}, "hidden"),
    (RelativePatch, {"gap": -1}, "gap"),
    (RelativePatch, {"gap": 2}, r"side ≥ 30"),  # 28 // 3 − 2 = 7 px patches
    (RelativePatch, {"hidden": 0}, "hidden"),
    (Jigsaw, {"permutations": 1}, "from 2 to 1000"),
    (Jigsaw, {"permutations": 5000}, "from 2 to 1000"),
    (Jigsaw, {"permutations": "64"}, "from 2 to 1000"),
    (Jigsaw, {"permutations": True}, "from 2 to 1000"),
    (Jigsaw, {"jitter": 1.5}, "jitter"),
    (Jigsaw, {"jitter": 3}, r"side ≥ 33 .* use --image-size 48"),
    (DenoisingAE, {"noise": "salt"}, "one of gaussian, mask"),
    (DenoisingAE, {"sigma": 0}, "sigma must be > 0"),
    (DenoisingAE, {"sigma": "big"}, "sigma must be a number"),
    (DenoisingAE, {"drop": 1.0}, r"drop must be a fraction"),
    (InpaintingAE, {"hole": 0}, r"in \(0, 1\)"),
    (InpaintingAE, {"hole": 1.2}, r"in \(0, 1\)"),
    (InpaintingAE, {"outside_weight": -0.1}, "outside_weight must be ≥ 0"),
])
def test_check_refuses_bad_options(method, options, message):
    with pytest.raises(ConfigError, match=message) as info:
        method.check({**method.options, **options}, 28)
    assert "\n" not in str(info.value) and str(info.value).startswith(method.name)
