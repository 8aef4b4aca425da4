"""The methods beyond DANN: each loss behaves as its definition says, on constructed cases."""

import math
from types import SimpleNamespace

import pytest
import torch

from dlapps.adapt.losses import coral, layer_outputs, mmd
from dlapps.adapt.methods import METHODS, get_method
from dlapps.adapt.methods.cdan import MultilinearMap
from dlapps.adapt.methods.self_training import SelfTraining
from dlapps.engine import seed_everything
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.models import build_digits_net
from dlapps.semi.pseudo_label import alpha_ramp

CFG = SimpleNamespace(lambda_schedule="constant", gamma=10.0, lambda_max=1.0, method_options={})


def _gauss(n, d=5, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


@pytest.mark.parametrize("estimator, n", [("unbiased", 400), ("linear", 4000)])
def test_mmd_is_zero_for_one_distribution_and_grows_with_a_mean_shift(estimator, n):
    values = [float(mmd(_gauss(n, seed=1), _gauss(n, shift=s, seed=2), estimator)) for s in (0, 0.5, 1, 2)]
    assert abs(values[0]) < 0.01
    assert values[1] > 0.02 and values == sorted(values)
    same = _gauss(n, seed=3)
    assert abs(float(mmd(same, same.clone(), estimator))) < 0.01


def test_weighted_mmd_corrects_a_class_prior_shift():
    """Source 50/50 over two clusters, target 90/10: weights 0.9/0.5 and 0.1/0.5 close the gap."""
    a, b = _gauss(200, seed=4, shift=-1.5), _gauss(200, seed=5, shift=1.5)
    xs, ys = torch.cat([a, b]), torch.cat([torch.zeros(200), torch.ones(200)]).long()
    xt = torch.cat([_gauss(360, seed=6, shift=-1.5), _gauss(40, seed=7, shift=1.5)])
    weights = torch.tensor([0.9 / 0.5, 0.1 / 0.5])[ys]
    assert float(mmd(xs, xt, source_weights=weights)) < 0.2 * float(mmd(xs, xt))


def test_coral_of_equal_covariances_is_zero_and_matches_the_formula():
    xs = _gauss(300, d=4, seed=8)
    assert float(coral(xs, xs + 3.0)) == pytest.approx(0.0, abs=1e-9)  # a shift keeps C
    xt = _gauss(300, d=4, seed=9) * 2.0
    cs, ct = torch.cov(xs.T), torch.cov(xt.T)
    assert float(coral(xs, xt)) == pytest.approx(float(((cs - ct) ** 2).sum() / (4 * 16)), rel=1e-5)


def _net():
    seed_everything(0)
    return build_digits_net("mnist")


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
            torch.rand(n, 3, 28, 28, generator=g) * 0.5, None)


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"target"}) + ["dann+self-train", "adda+self-train"])
def test_every_method_takes_a_finite_step(name):
    m = get_method(name)(_net(), CFG)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for progress in (0.1, 0.9):  # both stages of ADDA, self-training's ramp on
        out = m(*_batch(), progress)
        assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    m.eval()
    assert m.predict(_batch()[0]).shape == (16, 10)
    assert (m.domain_logits(_batch()[0]) is None) == (not m.trains_discriminator)


def test_adda_freezes_the_source_encoder_and_adapts_a_copy():
    cfg = SimpleNamespace(**vars(CFG), optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3)
    from dlapps.adapt.experiment import make_optimizer

    m = get_method("adda")(_net(), cfg)
    opt = make_optimizer(cfg, m)
    # the adversarial players (M_t, D) get their own rate; every parameter is in exactly one group
    assert [g.get("lr_mult", 1.0) for g in opt.param_groups] == [1.0, 0.1]
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in m.parameters()) and len(set(grouped)) == len(grouped)
    step = lambda p: (opt.zero_grad(), m(*_batch(seed=int(p * 100)), p)["loss"].backward(), opt.step())  # noqa: E731
    for p in (0.0, 0.1, 0.2):
        step(p)
    frozen = {k: v.clone() for k, v in [*m.net.features.state_dict().items(),
                                         *m.net.classifier.state_dict().items()]}
    step(0.5)  # the boundary: the target encoder starts as the source encoder
    assert bool(m.adapting)
    for p in (0.6, 0.7, 0.8):
        step(p)
    after = {**m.net.features.state_dict(), **m.net.classifier.state_dict()}
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    moved = [not torch.equal(a, b) for a, b in zip(m.target_features.state_dict().values(),
                                                    m.net.features.state_dict().values(), strict=True)]
    assert any(moved)
    x = _batch()[0]
    m.eval()
    expected = m.net.classifier(m.target_features(m.net.normalize(x)))
    assert torch.allclose(m.predict(x), expected)  # tested with target encoder + source classifier


def test_drcn_decoder_learns_to_reconstruct_and_alternates():
    """Under the engine's own optimizer (SGD, lr 0.01, momentum 0.9), not an adaptive one that
    would hide a badly scaled loss."""
    m = get_method("drcn")(_net(), CFG)
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.rand(8, 3, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    # target images with structure (binary blobs), not noise
    coarse = torch.rand(8, 3, 4, 4, generator=g)
    xt = (torch.nn.functional.interpolate(coarse, size=28, mode="bilinear") > 0.5).float()
    mean_image_error = float((xt - xt.mean(0)).pow(2).flatten(1).sum(1).mean())
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    losses, active = [], []
    for _ in range(150):
        out = m(xs, ys, xt, None, 0.5)
        is_rec = out["loss"].item() == pytest.approx(0.3 * float(out["rec_loss"]), rel=1e-4)
        active.append("rec" if is_rec else "cls")
        losses.append(float(out["rec_loss"]))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert active[:4] == ["cls", "rec", "cls", "rec"]
    # it reconstructs each image, far better than the batch's mean image would
    assert losses[-1] < 0.3 * mean_image_error < losses[1]
    assert m.reconstruct(xt).shape == xt.shape


def test_cdan_multilinear_map_shapes():
    f, g = torch.randn(6, 8), torch.softmax(torch.randn(6, 3), 1)
    full = MultilinearMap(8, 3)
    assert full(f, g).shape == (6, 24) and not full.random
    assert torch.allclose(full(f, g).view(6, 3, 8), g[:, :, None] * f[:, None, :])  # f ⊗ g
    rnd = MultilinearMap(768, 10, max_dim=4096, random_dim=1024)
    assert rnd.random and rnd(torch.randn(6, 768), torch.softmax(torch.randn(6, 10), 1)).shape == (6, 1024)
    m = get_method("cdan")(_net(), CFG)
    assert m.map.out_dim == 1024 and m.discriminator[0].in_features == 1024


LEE = SimpleNamespace(**{**vars(CFG), "method_options": {"self-train": {"ema": 0, "shift": 0}}})


def test_self_training_ignores_low_confidence_samples():
    st = SelfTraining(_net(), LEE)  # Lee's own form: the network labels itself
    logits = torch.tensor([[9.0, 0, 0], [0.3, 0.2, 0.1], [0, 0, 8.0], [1.0, 1.1, 0]], requires_grad=True)
    st.base_method.logits = lambda x: logits
    loss, confident = st.pseudo_label_loss(torch.zeros(4, 3, 28, 28))
    loss.backward()
    assert confident.item() == 0.5
    assert torch.all(logits.grad[[1, 3]] == 0) and torch.all(logits.grad[[0, 2]].abs().sum(1) > 0)


def test_mean_teacher_labels_and_follows_the_network_as_an_exponential_average():
    st = SelfTraining(_net(), CFG)
    assert st.ema == 0.99 and st.shift == 2 and not any(p.requires_grad for p in st.teacher.parameters())
    assert all(id(p) not in {id(t) for t in st.teacher.parameters()}
               for g in st.param_groups() for p in g["params"])
    # the labels and the mask come from the teacher: a row the student is unsure of is learned
    # when the teacher is confident, and a row the student is sure of is ignored when it is not
    student = torch.tensor([[0.1, 0.0, 0.0], [9.0, 0.0, 0.0]], requires_grad=True)
    st.base_method.logits = lambda x: student
    st.teacher.logits = lambda x: torch.tensor([[0.0, 9.0, 0.0], [0.3, 0.2, 0.1]])
    loss, confident = st.pseudo_label_loss(torch.zeros(2, 3, 28, 28))
    loss.backward()
    assert confident.item() == 0.5 and torch.all(student.grad[1] == 0)
    assert student.grad[0, 1] < 0  # pushed towards the teacher's class 1
    # θ̄ ← 0.99 θ̄ + 0.01 θ, once per training step
    st = SelfTraining(_net(), CFG)
    opt = torch.optim.SGD(st.param_groups(), lr=0.1)
    before = st.net.classifier[0].weight.detach().clone()
    for _ in range(2):
        opt.zero_grad()
        st(*_batch(), 0.9)["loss"].backward()
        opt.step()
    after_one = st.teacher.net.classifier[0].weight.detach().clone()  # updated at the 2nd step
    assert not torch.equal(after_one, before)
    st.update_teacher()
    expected = 0.99 * after_one + 0.01 * st.net.classifier[0].weight.detach()
    assert torch.allclose(st.teacher.net.classifier[0].weight, expected, atol=1e-7)


def test_strong_view_labels_the_clean_batch_and_trains_on_a_distorted_copy():
    cfg = SimpleNamespace(**{**vars(CFG), "method_options": {"self-train": {"view": "strong"}}})
    st = SelfTraining(_net(), cfg)
    seen = {}

    def teacher(x):
        seen["teacher"] = x
        return torch.tensor([[9.0, 0, 0]] * len(x))

    def student(x):
        seen["student"] = x
        return torch.zeros(len(x), 3, requires_grad=True)

    st.teacher.logits, st.base_method.logits = teacher, student
    xt = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    loss, confident = st.pseudo_label_loss(xt)
    assert confident.item() == 1.0 and loss.item() == pytest.approx(math.log(3), rel=1e-5)
    assert seen["teacher"] is xt  # the labeller reads the unperturbed batch
    student = seen["student"]
    assert student.shape == xt.shape and student.min() >= 0 and student.max() <= 1
    assert (student - xt).abs().mean() > 0.05  # far more than the default 2-pixel shift changes


def test_self_training_view_must_be_known():
    cfg = SimpleNamespace(**{**vars(CFG), "method_options": {"self-train": {"view": "rand"}}})
    with pytest.raises(ConfigError, match="self-train's view must be one of shift, strong, got 'rand'"):
        SelfTraining(_net(), cfg)


def test_random_translate_moves_content_by_at_most_the_shift():
    from dlapps.data.augment import random_translate

    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 5, 5] = 1.0  # one bright pixel in the middle
    seed_everything(3)
    y = random_translate(x, 2)
    where = y.flatten(1).argmax(1)
    rows, cols = where // 12 - 5, where % 12 - 5
    assert rows.abs().max() == 2 and cols.abs().max() == 2 and (rows != 0).any()
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # moved, not blurred or lost
    seed_everything(3)
    assert torch.equal(random_translate(x, 2), y) and random_translate(x, 0) is x


def test_alpha_ramp_follows_lee():
    assert alpha_ramp(0.1, 3.0, 0.2, 0.6) == 0.0
    assert alpha_ramp(0.4, 3.0, 0.2, 0.6) == pytest.approx(1.5)
    assert alpha_ramp(0.6, 3.0, 0.2, 0.6) == alpha_ramp(1.0, 3.0, 0.2, 0.6) == 3.0


def test_composition_by_name():
    dst = get_method("dann+self-train")
    assert dst is get_method("dann+self-train") and dst.base is METHODS["dann"]
    assert dst.trains_discriminator and dst.uses_target_images and not dst.uses_target_labels
    m = dst(_net(), CFG)
    out = m(*_batch(), 0.9)
    assert {"domain_loss", "pseudo_loss", "alpha"} <= set(out)
    assert get_method("cdan+e+self-train").base is METHODS["cdan+e"]
    with pytest.raises(UnknownNameError, match="self-train"):
        get_method("dab+self-train")


def test_layer_outputs_and_method_options():
    outs = layer_outputs(_net(), _batch()[0], ["features"])
    assert [tuple(v.shape) for v in outs.values()] == [(16, 768), (16, 100), (16, 100), (16, 10)]
    with pytest.raises(UnknownNameError, match="logits"):
        layer_outputs(_net(), _batch()[0], ["fc7"])
    cfg = SimpleNamespace(**{**vars(CFG), "method_options": {"dan": {"layers": ["features"], "weight": 3}}})
    dan = get_method("dan")(_net(), cfg)
    assert dan.layers == ("features",) and dan.weight == 3.0
