"""Label-free selection criteria and calibration on constructed cases."""

import math

import numpy as np
import pytest
import torch

from dlapps.adapt.selection import (
    criteria,
    dev_risk,
    expected_calibration_error,
    information_maximization,
    pick,
    reverse_validation_linear,
    snd,
)
from dlapps.errors import ConfigError


def test_ece_of_calibrated_and_overconfident_predictions():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    right = torch.tensor([[0.0, 1.0]] * 0 + [[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 6)
    assert expected_calibration_error(right, labels) == pytest.approx(0.0)
    # confidence 0.9 everywhere, half of the predictions right: |0.5 - 0.9| = 0.4
    probs = torch.tensor([[0.9, 0.1]] * 10)
    half = torch.tensor([0] * 5 + [1] * 5)
    assert expected_calibration_error(probs, half) == pytest.approx(0.4)


def test_information_maximisation_prefers_confident_diverse_predictions():
    uniform = torch.full((8, 4), 0.25)
    assert information_maximization(uniform) == pytest.approx(0.0, abs=1e-6)
    diverse = torch.eye(4).repeat(2, 1)
    assert information_maximization(diverse) == pytest.approx(math.log(4), rel=1e-4)
    collapsed = torch.eye(4)[[0] * 8]  # confident but one class only
    assert information_maximization(collapsed) == pytest.approx(0.0, abs=1e-4)


def _clusters(n, centre, seed):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) * 0.5 + torch.tensor(centre)


def test_dev_weights_the_source_loss_where_the_target_lies():
    """Held-out source covers clusters A and B; the target lies on B only. Model 1 errs on A,
    model 2 on B: same plain source loss, but DEV must rank model 1 (right on B) first."""
    a, b = [3.0, 0, 0, 0], [-3.0, 0, 0, 0]
    fs_train = torch.cat([_clusters(100, a, 0), _clusters(100, b, 1)])
    ft_train = _clusters(200, b, 2)
    fs_val = torch.cat([_clusters(100, a, 3), _clusters(100, b, 4)])
    on_a = torch.arange(200) < 100
    loss_1 = torch.where(on_a, 2.0, 0.1)
    loss_2 = torch.where(on_a, 0.1, 2.0)
    assert loss_1.mean() == loss_2.mean()
    assert dev_risk(fs_train, ft_train, fs_val, loss_1) < 0.5 * dev_risk(fs_train, ft_train, fs_val, loss_2)
    # one distribution: the weights are ~1 and DEV is ~ the plain mean loss
    same = dev_risk(fs_val, _clusters(200, [0.0, 0, 0, 0], 5), _clusters(200, [0.0, 0, 0, 0], 6),
                    torch.full((200,), 0.7))
    assert same == pytest.approx(0.7, abs=0.05)


def test_reverse_validation_rewards_pseudo_labels_consistent_with_the_source():
    centres = [[4.0, 0, 0, 0], [-4.0, 0, 0, 0], [0, 4.0, 0, 0]]
    ft = torch.cat([_clusters(50, c, 10 + i) for i, c in enumerate(centres)])
    fs = torch.cat([_clusters(50, c, 20 + i) for i, c in enumerate(centres)])
    y = torch.arange(3).repeat_interleave(50)
    assert reverse_validation_linear(ft, y, fs, y, 3) > 0.95
    assert reverse_validation_linear(ft, (y + 1) % 3, fs, y, 3) < 0.05


def test_snd_of_three_predictions_by_hand():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    unit = p / np.sqrt((p**2).sum(1, keepdims=True))
    s = unit @ unit.T / 0.05
    np.fill_diagonal(s, -np.inf)
    q = np.exp(s - s.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    expected = np.mean([-sum(v * np.log(v) for v in row if v > 0) for row in q])
    assert snd(torch.tensor(p)) == pytest.approx(expected, rel=1e-5)
    # the first two predictions are each other's near neighbour, the third's are both far
    assert 0.05 < expected < math.log(2)


def test_snd_is_higher_for_dense_clusters_of_predictions_than_for_spread_ones():
    """SND is the mean entropy of each prediction's soft neighbour distribution. In two tight
    clusters of 30 confident predictions every point has 29 neighbours at similarity ~1 and the
    other cluster at ~0.1, so its mass spreads evenly over its cluster: H ≈ log 29. Predictions
    spread over the simplex have neighbours at graded similarities; τ = 0.05 puts the mass on the
    few nearest, so the entropy is lower. Identical predictions (a collapse) reach log(n − 1)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]).repeat_interleave(30, 0)
    clustered = centres + 0.02 * torch.rand(60, 3, generator=g)
    clustered = clustered / clustered.sum(1, keepdim=True)
    spread = -torch.rand(60, 3, generator=g).log()  # Dirichlet(1, 1, 1): uniform on the simplex
    spread = spread / spread.sum(1, keepdim=True)
    assert snd(clustered) == pytest.approx(math.log(29), abs=0.01)
    assert snd(spread) < snd(clustered) - 0.3
    assert snd(torch.full((60, 3), 1 / 3)) == pytest.approx(math.log(59), rel=1e-5)
    with pytest.raises(ConfigError, match="at least 2"):
        snd(torch.ones(1, 3))


def test_criteria_returns_every_key_and_the_proper_reverse_only_when_given():
    f = _clusters(60, [0.0, 0, 0, 0], 30)
    logits = torch.randn(60, 3, generator=torch.Generator().manual_seed(1))
    out = criteria(f, f + 1, logits, f, logits, logits.argmax(1))
    assert set(out) == {"sel_entropy", "sel_im", "sel_snd", "sel_dev", "sel_reverse_linear"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["sel_snd"] == snd(logits.softmax(1))
    given = criteria(f, f + 1, logits, f, logits, logits.argmax(1), reverse=0.42)
    assert given == {**out, "sel_reverse": 0.42}


def test_pick_reports_each_rule_last_and_a_marked_oracle():
    keys = ("target_acc", "sel_entropy", "sel_im", "sel_snd", "sel_dev", "sel_reverse_linear")
    history = [{"epoch": e, **dict(zip(keys, values, strict=True))} for e, values in
               [(1, (0.50, 1.0, 0.1, 3.0, 0.9, 0.6)), (2, (0.70, 0.5, 0.2, 2.0, 0.95, 0.9)),
                (3, (0.65, 0.2, 0.15, 2.5, 0.5, 0.8))]]
    history[0]["sel_reverse"], history[2]["sel_reverse"] = 0.3, 0.4  # not computed at epoch 2
    history[2]["target_ece"] = 0.1
    history.append({"epoch": 4, "target_acc": 0.60})  # no criteria (e.g. selection switched off)
    p = pick(history)
    assert {k: v["epoch"] for k, v in p.items()} == {"last": 4, "entropy": 3, "im": 2, "snd": 1, "dev": 3,
                                                     "reverse": 3, "reverse-linear": 2, "oracle": 2}
    assert p["oracle"]["oracle"] is True and "oracle" not in p["dev"]
    assert p["dev"]["target_acc"] == 0.65 and p["dev"]["ece"] == 0.1
