"""Contrastive self-supervised methods: SimCLR's NT-Xent, MoCo's queue and momentum encoder, and
the contrastive view they share."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from dlapps.data.augment import contrastive_view
from dlapps.errors import ConfigError
from dlapps.ssl.base import Encoder, PretrainInfo
from dlapps.ssl.moco import MoCo
from dlapps.ssl.simclr import SimCLR, nt_xent

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INFO = PretrainInfo(n_images=64, channels=1, size=28, num_classes=10)


def make(cls, width: int = 8, **options):
    config = SimpleNamespace(method_options={cls.name: options} if options else {})
    return cls(Encoder(channels=1, width=width), INFO, config)


def images(n: int = 16, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Distinct synthetic images in [0, 1]: a bright rectangle per image on a noisy background."""
    g = torch.Generator().manual_seed(seed)
    x = 0.2 * torch.rand(n, channels, 28, 28, generator=g)
    for i in range(n):
        r, c = torch.randint(0, 18, (2,), generator=g).tolist()
        h, w = torch.randint(4, 10, (2,), generator=g).tolist()
        x[i, :, r:r + h, c:c + w] = 0.6 + 0.4 * torch.rand(channels, 1, 1, generator=g)
    return x


# ---------------------------------------------------------------- NT-Xent


def nt_xent_by_hand(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    rows = torch.cat([z1, z2]).tolist()
    z = [[a / math.sqrt(sum(c * c for c in v)) for a in v] for v in rows]
    n, b = len(z), len(z1)
    sim = [[sum(a * c for a, c in zip(z[i], z[k], strict=True)) for k in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        j = (i + b) % n
        denominator = sum(math.exp(sim[i][k] / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(sim[i][j] / tau) / denominator)
    return total / n


def test_nt_xent_matches_the_formula_by_hand():
    z1 = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.3, 2.0], [0.2, -1.5, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[0.8, 2.2, 0.1], [-0.5, -0.4, 1.0], [1.0, -1.0, -0.3]], dtype=torch.float64)
    for tau in (0.1, 0.5, 2.0):
        assert nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_by_hand(z1, z2, tau), rel=1e-12)


def test_nt_xent_is_lowest_for_aligned_views():
    z = 5.0 * torch.eye(6, dtype=torch.float64) + 0.1  # well separated directions
    shuffled = z[torch.tensor([1, 2, 3, 4, 5, 0])]
    assert nt_xent(z, z, 0.5) < nt_xent(z, shuffled, 0.5)
    # orthogonal aligned views: ℓ = log(1 + (2B − 2) e^{−1/τ}) for every anchor, → 0 as τ → 0
    b = 4
    e = torch.eye(b, dtype=torch.float64)
    losses = [nt_xent(e, e, tau).item() for tau in (1.0, 0.2, 0.05)]
    for tau, loss in zip((1.0, 0.2, 0.05), losses, strict=True):
        assert loss == pytest.approx(math.log(1 + (2 * b - 2) * math.exp(-1 / tau)), rel=1e-12)
    assert losses[0] > losses[1] > losses[2] and losses[2] < 1e-7


def test_nt_xent_is_stable_at_small_temperature():
    z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    assert torch.isfinite(nt_xent(z1, z2, 1e-3))


def test_nt_xent_agrees_with_lightly():
    loss_module = pytest.importorskip("lightly.loss")
    torch.manual_seed(0)
    z1, z2 = torch.randn(10, 7, dtype=torch.float64), torch.randn(10, 7, dtype=torch.float64)
    for tau in (0.07, 0.5, 1.0):
        reference = loss_module.NTXentLoss(temperature=tau)(z1, z2)
        assert nt_xent(z1, z2, tau).item() == pytest.approx(reference.item(), rel=1e-9)


# ---------------------------------------------------------------- contrastive view


@pytest.mark.parametrize("channels", [1, 3])
def test_contrastive_view_keeps_shape_and_range_and_differs_per_image(channels):
    x = images(1, channels).repeat(8, 1, 1, 1)  # the same image 8 times
    torch.manual_seed(0)
    v1, v2 = contrastive_view(x), contrastive_view(x)
    assert v1.shape == x.shape and v1.dtype == x.dtype
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)
    assert len({tuple(v.flatten().tolist()) for v in v1}) == 8  # drawn per image


def test_contrastive_view_is_reproducible_under_a_seed():
    x = images(6, 3)
    torch.manual_seed(3)
    a = contrastive_view(x)
    torch.manual_seed(3)
    b = contrastive_view(x)
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        contrastive_view(x[0])


# ---------------------------------------------------------------- MoCo pieces


def test_moco_queue_is_first_in_first_out_with_wrap_around():
    moco = make(MoCo, queue=5, proj_dim=2)
    keys = torch.arange(1, 15, dtype=torch.float32)[:, None].repeat(1, 2)  # key n = (n, n)

    moco.enqueue(keys[0:2])
    moco.enqueue(keys[2:4])
    assert moco.queue_ptr.item() == 4
    assert moco.queue[:4, 0].tolist() == [1, 2, 3, 4]
    moco.enqueue(keys[4:6])  # 5 goes to the last row, 6 wraps over the oldest (1)
    assert moco.queue[:, 0].tolist() == [6, 2, 3, 4, 5] and moco.queue_ptr.item() == 1
    oldest_first = moco.queue.roll(-moco.queue_ptr.item(), dims=0)[:, 0].tolist()
    assert oldest_first == [2, 3, 4, 5, 6]
    moco.enqueue(keys[6:9])
    assert moco.queue.roll(-moco.queue_ptr.item(), dims=0)[:, 0].tolist() == [5, 6, 7, 8, 9]
    moco.enqueue(keys[9:14])  # a batch of exactly K replaces everything, pointer unchanged
    assert moco.queue.roll(-moco.queue_ptr.item(), dims=0)[:, 0].tolist() == [10, 11, 12, 13, 14]
    assert moco.queue_ptr.item() == 4
    moco.enqueue(keys[:7])  # more than K: only the last K stay, in order
    assert moco.queue.roll(-moco.queue_ptr.item(), dims=0)[:, 0].tolist() == [3, 4, 5, 6, 7]


def test_moco_queue_starts_normalised_and_lives_in_the_checkpoint():
    moco = make(MoCo, queue=32)
    assert moco.queue.shape == (32, 64)
    assert torch.allclose(moco.queue.norm(dim=1), torch.ones(32))
    state = moco.state_dict()
    assert {"queue", "queue_ptr"} <= state.keys()
    assert any(k.startswith("key_encoder.") for k in state) and any(k.startswith("key_head.") for k in state)


def test_momentum_update_is_an_exponential_average():
    moco = make(MoCo, momentum=0.75)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # multiples of 1/8: every product and sum below is exact in float32
        for module in (moco.encoder, moco.head, moco.key_encoder, moco.key_head):
            for t in [*module.parameters(), *module.buffers()]:
                values = torch.randint(-16, 17, t.shape, generator=g)
                t.copy_(values / 8 if t.is_floating_point() else values.abs())
    before_k = [t.clone() for t in [*moco.key_encoder.parameters(), *moco.key_head.parameters()]]
    query = [t.clone() for t in [*moco.encoder.parameters(), *moco.head.parameters()]]
    bn_k = moco.key_encoder.body[1].running_mean.clone()
    bn_q = moco.encoder.body[1].running_mean.clone()
    moco.momentum_update()
    after_k = [*moco.key_encoder.parameters(), *moco.key_head.parameters()]
    assert len(after_k) == len(query) > 0
    for k0, q, k1 in zip(before_k, query, after_k, strict=True):
        assert torch.equal(k1, 0.75 * k0 + 0.25 * q)
    assert torch.equal(moco.key_encoder.body[1].running_mean, 0.75 * bn_k + 0.25 * bn_q)
    assert torch.equal(moco.key_encoder.body[1].num_batches_tracked, moco.encoder.body[1].num_batches_tracked)
    for q, q1 in zip(query, [*moco.encoder.parameters(), *moco.head.parameters()], strict=True):
        assert torch.equal(q, q1)  # the query side is untouched


def test_moco_keys_come_back_in_order_after_the_shuffled_chunks():
    moco = make(MoCo, bn_splits=4).eval()  # eval: BN uses running stats, so chunking changes nothing
    x = images(10)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(moco.key_head(moco.key_encoder(x)), dim=1)
        assert torch.allclose(moco._keys(x), expected, atol=1e-6)
        queries = torch.nn.functional.normalize(moco.head(moco.encoder(x)), dim=1)
        assert torch.allclose(moco._queries(x), queries, atol=1e-6)


def test_moco_eval_forward_changes_nothing():
    moco = make(MoCo, queue=16).eval()
    queue, keys = moco.queue.clone(), [p.clone() for p in moco.key_encoder.parameters()]
    with torch.no_grad():
        moco(images(8), torch.arange(8), 0.0)
    assert torch.equal(moco.queue, queue) and moco.queue_ptr.item() == 0
    assert all(torch.equal(a, b) for a, b in zip(keys, moco.key_encoder.parameters(), strict=True))


# ---------------------------------------------------------------- both methods


@pytest.mark.parametrize("cls", [SimCLR, MoCo])
def test_forward_gives_a_finite_loss_and_gradients_reach_the_encoder(cls):
    torch.manual_seed(0)
    method = make(cls).train()
    out = method(images(8), torch.arange(8), 0.0)
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    assert 0.0 <= float(out["pretext_acc"]) <= 1.0
    out["loss"].backward()
    grads = [p.grad for p in method.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    if cls is MoCo:
        for p in [*method.key_encoder.parameters(), *method.key_head.parameters()]:
            assert not p.requires_grad and p.grad is None
        assert method.queue_ptr.item() == 8  # the batch's keys went into the queue


def loss_on_fixed_draws(method, x: torch.Tensor) -> float:
    """The training-mode loss of ``x`` under fixed random draws, taken on a copy (MoCo's forward
    changes its queue and key encoder)."""
    probe = copy.deepcopy(method)
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        with torch.no_grad():
            return probe(x, torch.arange(len(x)), 0.0)["loss"].item()


@pytest.mark.parametrize("cls", [SimCLR, MoCo])
def test_a_few_steps_on_a_fixed_batch_lower_the_loss(cls):
    """The loss of batch a, measured under the same augmentation draws, before and after 20
    steps. MoCo alternates a with a second batch b and has a queue of one batch, so a's queries
    meet b's keys (by the current key encoder) and never stale keys of their own images."""
    torch.manual_seed(0)
    method = (make(MoCo, queue=32, momentum=0.9) if cls is MoCo else make(SimCLR)).train()
    a, b = images(64).split(32)
    idx = torch.arange(32)
    batches = [a, b] if cls is MoCo else [a]
    with torch.no_grad():
        method(b, idx, 0.0)  # MoCo: the queue now holds b's keys
    before = loss_on_fixed_draws(method, a)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    for step in range(20):  # ends on b: the queue holds b's newest keys
        loss = method(batches[step % len(batches)], idx, 0.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_on_fixed_draws(method, a)
    assert after < before - 0.05, (before, after)


# ---------------------------------------------------------------- check()


def test_simclr_check():
    SimCLR.check(dict(SimCLR.options), 28)
    with pytest.raises(ConfigError, match=r"^simclr.temperature must be > 0, got 0$"):
        SimCLR.check({**SimCLR.options, "temperature": 0}, 28)
    for bad in (-0.1, float("nan"), float("inf"), "warm"):
        with pytest.raises(ConfigError, match="simclr.temperature"):
            SimCLR.check({**SimCLR.options, "temperature": bad}, 28)
    with pytest.raises(ConfigError, match="simclr.proj_dim"):
        SimCLR.check({**SimCLR.options, "proj_dim": 0}, 28)


@pytest.mark.parametrize("key, bad", [("temperature", 0), ("temperature", float("nan")), ("momentum", 1.0),
                                      ("momentum", -0.1), ("momentum", float("nan")), ("queue", 0),
                                      ("queue", 2.5), ("proj_dim", 0), ("bn_splits", 0)])
def test_moco_check(key, bad):
    MoCo.check(dict(MoCo.options), 28)
    MoCo.check({**MoCo.options, "momentum": 0.0, "queue": 1}, 28)
    with pytest.raises(ConfigError, match=rf"^moco\.{key} must "):
        MoCo.check({**MoCo.options, key: bad}, 28)
