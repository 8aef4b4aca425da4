"""Clustering scores and tools (dlapps.ssl.metrics), DeepCluster and DAC."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from dlapps.errors import ConfigError
from dlapps.ssl import deepcluster as dc_module
from dlapps.ssl import metrics
from dlapps.ssl.base import Encoder, PretrainInfo
from dlapps.ssl.dac import DAC, LAMBDA_MAX, select_pairs, thresholds
from dlapps.ssl.deepcluster import DeepCluster, fill_empty_clusters


def blobs(n_per: int, k: int, dim: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * spread
    y = np.repeat(np.arange(k), n_per)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def config(**options) -> types.SimpleNamespace:
    return types.SimpleNamespace(method_options=options)


def info(n: int) -> PretrainInfo:
    return PretrainInfo(n_images=n, channels=1, size=28, num_classes=10)


# ---------------------------------------------------------------- scores


def test_perfect_and_renamed_clusterings_score_one():
    true = np.array([0, 0, 1, 1, 1, 2, 2, 3])
    renamed = np.array([7, 7, 3, 3, 3, 0, 0, 5])  # 0→7, 1→3, 2→0, 3→5
    for pred in (true, renamed):
        assert metrics.clustering_scores(pred, true) == pytest.approx({"nmi": 1.0, "ari": 1.0, "acc": 1.0})


def test_acc_takes_the_best_one_to_one_matching():
    # contingency (rows clusters 0..2, columns classes 0..1):
    #   c0: 3 of class 0, 1 of class 1     c1: 0, 2     c2: 2, 0
    # matchings: c0→0, c1→1: 3 + 2 = 5 (c2 unmatched, its 2 wrong); c2→0, c1→1: 4; ... best 5/8.
    pred = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    true = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    assert metrics.cluster_acc(pred, true) == pytest.approx(5 / 8)
    # many-to-one would give 7/8 (c0→0, c1→1, c2→0): not allowed
    # fewer clusters than classes: one cluster of everything matches one class
    assert metrics.cluster_acc(np.zeros(6, int), np.array([0, 0, 0, 1, 1, 2])) == pytest.approx(3 / 6)


def test_acc_on_a_contingency_with_a_greedy_trap():
    # C = [[5, 4], [4, 0]] (clusters × classes): greedy c0→0 (5) leaves c1→1 (0) = 5;
    # the Hungarian c0→1, c1→0 gives 4 + 4 = 8, of N = 13
    pred = np.array([0] * 9 + [1] * 4)
    true = np.array([0] * 5 + [1] * 4 + [0] * 4)
    assert metrics.cluster_acc(pred, true) == pytest.approx(8 / 13)


def test_scores_of_nmi_and_ari_are_scikit_learns():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(0)
    pred, true = rng.integers(0, 5, 200), rng.integers(0, 4, 200)
    s = metrics.clustering_scores(pred, true)
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(true, pred))
    assert s["ari"] == pytest.approx(adjusted_rand_score(true, pred))
    assert 0 < s["acc"] < 0.5


# ---------------------------------------------------------------- tools


def test_kmeans_finds_blobs_and_is_seeded():
    x, y = blobs(100, 4, 16, spread=8)
    ids = metrics.kmeans(x, 4, seed=3)
    assert metrics.cluster_acc(ids, y) == 1.0
    assert np.array_equal(ids, metrics.kmeans(x, 4, seed=3))


def test_pca_whiten_l2_rows_unit_and_matches_sklearn_whitening():
    x, _ = blobs(50, 3, 20, spread=3)
    z = metrics.pca_whiten_l2(x, 8)
    assert z.shape == (150, 8) and z.dtype == np.float32
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    ref = PCA(8, whiten=True, svd_solver="full").fit_transform(x.astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    sign = np.sign((z * ref).sum(0))  # principal axes are defined up to their sign
    assert np.allclose(z * sign, ref, atol=1e-5)
    # a dead direction (constant column) stays finite; dim above D is clamped
    x[:, 0] = 0.0
    z = metrics.pca_whiten_l2(x, 64)
    assert z.shape == (150, 20) and np.isfinite(z).all()


def three_blobs(sep: float, n_per: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Unit Gaussians at (0, 0), (sep, 0), (0, sep)."""
    y = np.repeat(np.arange(3), n_per)
    return np.array([[0, 0], [sep, 0], [0, sep]])[y] + np.random.default_rng(0).normal(size=(len(y), 2)), y


def test_fuzzy_cmeans_recovers_blobs_and_rows_sum_to_one():
    x, y = three_blobs(12.0, 60)
    for init in ("kmeans++", "random"):
        u, ids = metrics.fuzzy_cmeans(x, 3, seed=0, m=2.0, init=init)
        assert u.shape == (180, 3)
        assert np.allclose(u.sum(1), 1.0) and (u >= 0).all()
        assert metrics.cluster_acc(ids, y) == 1.0
        assert np.array_equal(ids, u.argmax(1))


def test_fuzzy_cmeans_tends_to_kmeans_as_m_tends_to_one():
    x, y = three_blobs(4.0)  # overlapping: some points lie past a boundary
    assert metrics.cluster_acc(metrics.kmeans(x, 3, seed=0), y) < 1.0
    km = metrics.kmeans(x, 3, seed=0, n_init=10, max_iter=300)
    u_hard, ids_hard = metrics.fuzzy_cmeans(x, 3, seed=0, m=1.01)
    u_soft, _ = metrics.fuzzy_cmeans(x, 3, seed=0, m=2.0)
    assert metrics.cluster_acc(ids_hard, km) == 1.0
    assert u_hard.max(1).mean() > 0.999 and u_soft.max(1).mean() < 0.9
    # and the hard partition is a k-means fixed point: each point is nearest its cluster's mean
    means = np.stack([x[ids_hard == j].mean(0) for j in range(3)])
    assert np.array_equal(((x[:, None] - means[None]) ** 2).sum(-1).argmin(1), ids_hard)


def test_fuzzy_cmeans_point_on_a_centre():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 0.0]])
    u, ids = metrics.fuzzy_cmeans(x, 2, seed=0)
    assert np.isfinite(u).all() and np.allclose(np.sort(u, 1), [[0, 1]] * 6)
    assert metrics.cluster_acc(ids, [0, 0, 0, 1, 1, 1]) == 1.0


# ---------------------------------------------------------------- DeepCluster


def deepcluster(n: int, **options) -> DeepCluster:
    return DeepCluster(Encoder(1, 8), info(n), config(deepcluster=options))


def test_deepcluster_refresh_finds_blobs_and_reinitialises_head():
    x, y = blobs(50, 4, 32, spread=6)
    m = deepcluster(len(x), clusters=4, pca_dim=8)
    assert m.sample_weights() is None and not m.clustered
    before = m.head.weight.detach().clone()
    stats = m.refresh(torch.from_numpy(x), epoch=0)
    assert metrics.cluster_acc(m.assignments.numpy(), y) == 1.0
    assert np.isnan(stats["nmi_previous"])
    assert not torch.equal(before, m.head.weight)
    # the reset is in place: an optimizer built before still holds the head's weights
    assert m.head.weight is m.refreshed_parameters()[0]
    again = m.head.weight.detach().clone()
    stats = m.refresh(torch.from_numpy(x), epoch=1)
    assert not torch.equal(again, m.head.weight)
    assert stats["nmi_previous"] == pytest.approx(1.0)
    assert torch.equal(m.counts, torch.bincount(m.assignments, minlength=4))


def test_deepcluster_sample_weights_are_uniform_over_clusters():
    x, _ = blobs(30, 3, 16, spread=6)
    x = np.concatenate([x[:30], x[30:40], x[60:65]])  # blobs of 30, 10 and 5 images
    m = deepcluster(len(x), clusters=3, pca_dim=8)
    m.refresh(torch.from_numpy(x), epoch=0)
    w = m.sample_weights()
    assert w.shape == (45,)
    per_cluster = torch.zeros(3, dtype=w.dtype).index_add_(0, m.assignments, w)
    assert torch.allclose(per_cluster, torch.ones(3, dtype=w.dtype))


def test_deepcluster_same_seed_same_clustering():
    x, _ = blobs(40, 5, 32, spread=1.0)  # overlapping, so the seed matters
    runs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        m = deepcluster(len(x), clusters=12, pca_dim=16)
        m.refresh(torch.from_numpy(x), epoch=0)
        runs.append((m.assignments.clone(), m.head.weight.detach().clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])  # the k-means seed comes from torch's RNG


def test_fill_empty_clusters_leaves_none_empty():
    x, _ = blobs(20, 2, 4, spread=5)
    ids = np.repeat([0, 3], 20)  # clusters 1, 2 and 4 empty
    centres = np.stack([x[ids == c].mean(0) if (ids == c).any() else np.zeros(4) for c in range(5)])
    new, cen = fill_empty_clusters(x, ids, centres, np.random.default_rng(0))
    counts = np.bincount(new, minlength=5)
    assert (counts > 0).all() and counts.sum() == 40 and cen.shape == (5, 4)
    # only the points of clusters that were split move, into the empty ones
    assert set(np.unique(new[ids == 0])) | set(np.unique(new[ids == 3])) == {0, 1, 2, 3, 4}
    # duplicate points (no side of any hyperplane) are split at the median
    dup = np.zeros((6, 3))
    new, _ = fill_empty_clusters(dup, np.zeros(6, int), np.zeros((3, 3)), np.random.default_rng(0))
    assert (np.bincount(new, minlength=3) > 0).all()


def test_deepcluster_refresh_fills_clusters_kmeans_left_empty(monkeypatch):
    x, _ = blobs(20, 3, 16, spread=5)

    def lazy_kmeans(z, k, seed, max_iter):  # everything in cluster 0
        return np.zeros(len(z), np.int64), np.zeros((k, z.shape[1]), np.float32)

    monkeypatch.setattr(dc_module.metrics, "kmeans_fit", lazy_kmeans)
    m = deepcluster(len(x), clusters=6, pca_dim=8)
    stats = m.refresh(torch.from_numpy(x), epoch=0)
    assert stats["empty_filled"] == 5
    assert (torch.bincount(m.assignments, minlength=6) > 0).all()
    assert torch.equal(m.counts, torch.bincount(m.assignments, minlength=6))


def test_deepcluster_forward_trains_the_encoder():
    torch.manual_seed(0)
    n = 24
    m = deepcluster(n, clusters=4)
    assert m.k == 4 and deepcluster(200).k == 30  # default: 3 × classes
    with pytest.raises(RuntimeError, match="refresh"):
        m(torch.rand(4, 1, 28, 28), torch.arange(4), 0.0)
    images = torch.rand(n, 1, 28, 28)
    m.eval()
    m.refresh(m.embed(images), epoch=0)
    m.train()
    out = m(images[:8], torch.arange(8), 0.5)
    assert torch.isfinite(out["loss"]) and 0 <= float(out["pretext_acc"]) <= 1
    out["loss"].backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_deepcluster_rejects_bad_settings():
    defaults = dict(DeepCluster.options)
    for bad in ({"clusters": 1}, {"clusters": -3}, {"clusters": "10"}, {"clusters": True}, {"pca_dim": 0},
                {"pca_dim": 2.5}, {"kmeans_iters": 0}, {"shift": 0.7}, {"shift": "2"}):
        with pytest.raises(ConfigError):
            DeepCluster.check({**defaults, **bad}, 28)
    DeepCluster.check(defaults, 28)
    with pytest.raises(ConfigError, match="exceeds"):
        deepcluster(20)  # 30 clusters for 20 images


# ---------------------------------------------------------------- DAC


def test_dac_thresholds():
    assert thresholds(0.0) == pytest.approx((0.95, 0.455))
    u, l = thresholds(LAMBDA_MAX)  # noqa: E741
    assert u == pytest.approx(l) == pytest.approx(0.5)
    assert thresholds(0.2) == pytest.approx((0.75, 0.475))


def test_select_pairs_obeys_thresholds():
    S = torch.tensor([[1.00, 0.97, 0.30, 0.60],
                      [0.97, 1.00, 0.455, 0.96],
                      [0.30, 0.455, 1.00, 0.10],
                      [0.60, 0.96, 0.10, 1.00]])
    r, v = select_pairs(S, 0.95, 0.455)
    assert torch.equal(r, (S > 0.95).float())
    assert torch.equal(v, ((S > 0.95) | (S < 0.455)).float())
    assert torch.equal(v[S > 0.95], torch.ones(int((S > 0.95).sum())))
    assert r[S < 0.455].sum() == 0 and torch.equal(v[S < 0.455], torch.ones(int((S < 0.455).sum())))
    between = (S >= 0.455) & (S <= 0.95)
    assert v[between].sum() == 0 and between.sum() == 4  # 0.60 twice, 0.455 twice
    assert not r.requires_grad


def test_selection_grows_with_lambda_until_everything():
    S = torch.rand(40, 40, generator=torch.Generator().manual_seed(0))
    last, count = torch.zeros_like(S, dtype=torch.bool), -1
    for lam in np.linspace(0, LAMBDA_MAX, 19):
        _, v = select_pairs(S, *thresholds(float(lam)))
        v = v.bool()
        assert (v | ~last).all()  # superset of the previous selection
        assert int(v.sum()) >= count
        last, count = v, int(v.sum())
    assert count == S.numel()  # at u = l every pair is selected
    # at λ = 0 only S > 0.95 or S < 0.455 (uniform S: about half the pairs)
    assert int(select_pairs(S, *thresholds(0.0))[1].sum()) == int(((S > 0.95) | (S < 0.455)).sum())


def test_dac_forward_trains_the_encoder_and_logs_schedule():
    torch.manual_seed(0)
    m = DAC(Encoder(1, 8), info(16), config())
    assert m.k == 10
    x = torch.rand(16, 1, 28, 28)
    out = m(x, torch.arange(16), 0.5)
    assert torch.isfinite(out["loss"])
    assert out["lambda"] == pytest.approx(0.225)
    assert (out["u"], out["l"]) == pytest.approx(thresholds(0.225))
    assert out["loss"].item() == pytest.approx(out["pair_loss"].item() + out["u"] - out["l"], abs=1e-6)
    assert 0 < float(out["selected"]) <= 1
    out["loss"].backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert float(m(x, torch.arange(16), 1.0)["selected"]) == 1.0
    m.eval()
    ids = m.cluster_ids(x)
    assert ids.shape == (16,) and ids.dtype == torch.long and int(ids.max()) < 10
    for bad in ({"clusters": 1}, {"hidden": -1}, {"hidden": "64"}):
        with pytest.raises(ConfigError):
            DAC.check({**DAC.options, **bad}, 28)
    DAC.check(dict(DAC.options), 28)


def test_dac_pair_loss_is_the_mean_bce_of_selected_pairs_and_survives_autocast():
    torch.manual_seed(0)
    m = DAC(Encoder(1, 8), info(12), config(dac={"hidden": 0}))
    x = torch.rand(12, 1, 28, 28)
    with torch.no_grad():
        f = m.label_features(x)
        S = f @ f.T
        u, l = thresholds(0.3 * LAMBDA_MAX)  # noqa: E741
        r, v = select_pairs(S, u, l)
        v.fill_diagonal_(0)
        expected = torch.nn.functional.binary_cross_entropy(S.clamp(1e-6, 1 - 1e-6), r, reduction="none")
        expected = (expected * v).sum() / v.sum()
        out = m(x, torch.arange(12), 0.3)
        assert out["pair_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
        assert float(out["selected"]) == pytest.approx(float(v.sum()) / (12 * 11))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m(x, torch.arange(12), 0.3)["pair_loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
