"""Proxy A-distance and t-SNE behave as defined."""

import numpy as np
import pytest

from dlapps.adapt.diagnostics import joint_error, proxy_a_distance, tsne_embedding
from dlapps.adapt.paper import gap_closed, paper_numbers
from dlapps.engine.batches import fixed_sample


def test_a_distance_separable_vs_identical():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 20))
    far = rng.normal(size=(400, 20)) + 3.0
    same = rng.normal(size=(400, 20))
    assert proxy_a_distance(a, far) > 1.9
    assert abs(proxy_a_distance(a, same)) < 0.3


def test_joint_error_sees_classes_swapped_across_domains():
    """Two classes at ±2 on the first axis in the source. A target whose classes sit where the
    source's do lets one linear classifier serve both (λ* ≈ 0); a target whose classes are
    swapped (class 0 where the source's class 1 is) cannot be served with the source by any
    linear classifier: one domain's error must be near 1, λ* ≈ 1. A target with no class
    structure at all costs it about half its points (λ* ≈ 0.5). A target whose classes are split
    along another axis is served by one oblique classifier fitted to both domains (λ* small),
    which a classifier fitted to the source alone would miss (ε_T ≈ 0.5)."""
    rng = np.random.default_rng(0)

    def domain(sign: float, n: int = 300, spread: float = 2.0, axis: int = 0):
        y = np.arange(n) % 2
        x = rng.normal(size=(n, 5)) * 0.5
        x[:, axis] += sign * spread * (2 * y - 1)
        return x, y

    fs, ys = domain(1)
    fs_te, ys_te = domain(1)
    for sign, spread, axis, low, high in ((1, 2.0, 0, 0.0, 0.02), (-1, 2.0, 0, 0.9, 1.1),
                                          (1, 0.0, 0, 0.35, 0.65), (1, 2.0, 1, 0.0, 0.1)):
        ft, yt = domain(sign, spread=spread, axis=axis)
        ft_te, yt_te = domain(sign, spread=spread, axis=axis)
        e = joint_error(fs, ys, ft, yt, fs_te, ys_te, ft_te, yt_te)
        assert low <= e["joint"] <= high, (sign, spread, e)
        assert e["joint"] == pytest.approx(e["source"] + e["target"])
    with pytest.raises(ValueError, match="both domains"):
        joint_error(fs[:0], ys[:0], ft, yt, fs_te, ys_te, ft_te, yt_te)


def test_tsne_shape_and_determinism():
    rng = np.random.default_rng(0)
    fs, ft = rng.normal(size=(60, 80)), rng.normal(size=(50, 80)) + 2
    xy = tsne_embedding(fs, ft)
    assert xy.shape == (110, 2)
    assert np.allclose(xy, tsne_embedding(fs, ft))


def test_fixed_sample_is_fixed():
    assert fixed_sample(1000, 10).tolist() == fixed_sample(1000, 10).tolist()
    assert len(fixed_sample(5, 10)) == 5


def test_paper_numbers_and_gap():
    p = paper_numbers("mnist5k", "mnistm5k")
    assert p["dann"] == (0.8149, 0.7666)
    assert gap_closed(p["source"][0], p["dann"][0], p["target"][0]) == pytest.approx(0.579, abs=1e-3)
    assert paper_numbers("digits", "usps") is None
