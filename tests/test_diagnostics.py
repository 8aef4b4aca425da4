"""Proxy A-distance and t-SNE behave as defined."""

import numpy as np
import pytest

from dlapps.adapt.diagnostics import proxy_a_distance, tsne_embedding
from dlapps.adapt.paper import gap_closed, paper_numbers
from dlapps.engine.batches import fixed_sample


def test_a_distance_separable_vs_identical():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 20))
    far = rng.normal(size=(400, 20)) + 3.0
    same = rng.normal(size=(400, 20))
    assert proxy_a_distance(a, far) > 1.9
    assert abs(proxy_a_distance(a, same)) < 0.3


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
