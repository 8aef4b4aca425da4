"""dlapps distill: the three kinds of knowledge (their losses on hand-computed values and against
torchdistill's), the frozen teacher, the networks, resume, bad input and the command end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.distill import experiment as E
from dlapps.distill.base import FeatureTap, last_linear
from dlapps.distill.config import DistillConfig, cell_fingerprint, is_teacher_path, teacher_fingerprint
from dlapps.distill.feature import Feature, hint_loss
from dlapps.distill.kinds import KINDS
from dlapps.distill.relation import pairwise_distances, rkd_angle_loss, rkd_distance_loss
from dlapps.distill.response import kd_loss
from dlapps.errors import ConfigError, DataError, UnknownNameError
from dlapps.models.digits import build_digits_net
from dlapps.models.export import load_classifier, save_classifier
from dlapps.models.nets import NETS, build_net, count_parameters
from killing import comparable, killed_and_whole

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the tiny setting every end-to-end test uses: 512 digits, a small CNN teacher, a few epochs
TINY = ["--limit", "512", "--teacher", "cnn-small", "--student", "mlp-tiny", "--teacher-epochs", "3",
        "--epochs", "8", "--batch-size", "32", "--workers", "1", "-q"]


# --- response: Hinton et al.'s KD loss ---------------------------------------------------------


def test_kd_loss_equals_its_formula_on_known_logits():
    s = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    t = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    y = torch.tensor([0, 2])
    T, alpha = 2.0, 0.7

    def softmax(row, temp):
        e = [math.exp(v / temp) for v in row]
        return [v / sum(e) for v in e]

    ce = -sum(math.log(softmax(r, 1)[c]) for r, c in zip(s.tolist(), y.tolist(), strict=True)) / 2
    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax(tr, T), softmax(sr, T), strict=True))
             for sr, tr in zip(s.tolist(), t.tolist(), strict=True)) / 2
    out = kd_loss(s, t, y, T, alpha)
    assert out["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert out["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert out["loss"].item() == pytest.approx((1 - alpha) * ce + alpha * T * T * kl, rel=1e-5)


def test_kd_loss_is_cross_entropy_at_alpha_0_and_scales_with_t_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    y = torch.randint(10, (16,), generator=g)
    assert kd_loss(s, t, y, 4.0, 0.0)["loss"].item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    for T in (1.0, 3.0, 8.0):
        out = kd_loss(s, t, y, T, 1.0)
        assert out["loss"].item() == pytest.approx(T * T * out["kl"].item(), rel=1e-6)
    # the T² keeps the soft term's gradient at one scale: at high T it tends to (s − t)/(B·K) on
    # zero-mean logits (Hinton et al. §2.1), whatever T
    s0, t0 = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    s0.requires_grad_(True)
    kd_loss(s0, t0, y, 100.0, 1.0)["loss"].backward()
    assert torch.allclose(s0.grad, (s0 - t0).detach() / (16 * 10), atol=5e-4)  # grads ~1e-2
    # equal logits: no soft loss
    assert kd_loss(s, s, y, 4.0, 1.0)["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_kd_loss_matches_torchdistill():
    mid = pytest.importorskip("torchdistill.losses.mid_level")
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(32, 10, generator=g), torch.randn(32, 10, generator=g) * 3
    y = torch.randint(10, (32,), generator=g)
    for T, alpha in ((4.0, 0.9), (1.0, 0.5), (8.0, 0.2)):
        # torchdistill weighs CE by its alpha and the soft term by 1 − alpha: ours at α is theirs at 1 − α
        ref = mid.KDLoss("s", "output", "t", "output", temperature=T, alpha=1 - alpha)
        theirs = ref({"s": {"output": s}}, {"t": {"output": t}}, y)
        assert kd_loss(s, t, y, T, alpha)["loss"].item() == pytest.approx(theirs.item(), rel=1e-5)


# --- relation: RKD -----------------------------------------------------------------------------


def test_rkd_losses_vanish_for_a_scaled_teacher_embedding_and_not_otherwise():
    g = torch.Generator().manual_seed(2)
    teacher = torch.randn(12, 6, generator=g)
    for scale in (0.1, 1.0, 7.0):
        student = scale * teacher + 3.0  # scaled and translated: same shape of the batch
        assert rkd_distance_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-5)
        assert rkd_angle_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-5)
    other = torch.randn(12, 6, generator=g)
    assert rkd_distance_loss(other, teacher).item() > 1e-3
    assert rkd_angle_loss(other, teacher).item() > 1e-3
    # the student's embedding may have another dimension than the teacher's
    assert rkd_distance_loss(torch.randn(12, 3, generator=g), teacher).item() > 0


def test_pairwise_distances_and_rkd_on_hand_computed_points():
    e = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    d = pairwise_distances(e)
    assert torch.allclose(d, torch.tensor([[0.0, 3.0, 4.0], [3.0, 0.0, 5.0], [4.0, 5.0, 0.0]]), atol=1e-5)
    # distance potential: d / mean(3, 4, 5) = d / 4; the student (0,0),(1,0),(0,1): mean (1+1+√2)/3
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mu = (2 + math.sqrt(2)) / 3
    pairs = [(3 / 4, 1 / mu), (4 / 4, 1 / mu), (5 / 4, math.sqrt(2) / mu)]
    huber = [0.5 * (a - b) ** 2 if abs(a - b) < 1 else abs(a - b) - 0.5 for a, b in pairs]
    assert rkd_distance_loss(s, e).item() == pytest.approx(2 * sum(huber) / 9, rel=1e-5)
    # angle at the origin: 90° in both; at (3,0): cos = 3/5 in the teacher vs cos 45° in the student
    assert rkd_angle_loss(s, e).item() > 0


def test_rkd_loss_matches_torchdistill():
    mid = pytest.importorskip("torchdistill.losses.mid_level")
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(16, 8, generator=g), torch.randn(16, 32, generator=g)
    ref = mid.RKDLoss("s", "t", dist_factor=25.0, angle_factor=50.0, reduction="mean")
    theirs = ref({"s": {"output": s}}, {"t": {"output": t}})
    ours = 25.0 * rkd_distance_loss(s, t) + 50.0 * rkd_angle_loss(s, t)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


# --- feature: FitNets --------------------------------------------------------------------------


def test_fitnets_hint_is_zero_when_the_regressor_maps_exactly():
    g = torch.Generator().manual_seed(4)
    f_s = torch.randn(8, 5, generator=g)
    w, b = torch.randn(7, 5, generator=g), torch.randn(7, generator=g)
    f_t = f_s @ w.t() + b
    r = nn.Linear(5, 7)
    with torch.no_grad():
        r.weight.copy_(w)
        r.bias.copy_(b)
    assert hint_loss(r(f_s), f_t).item() == pytest.approx(0.0, abs=1e-10)
    assert hint_loss(r(f_s), f_t + 1.0).item() == pytest.approx(1.0, rel=1e-5)  # mean over B·d_t

    # in the module: student features regressed onto the teacher's, added to CE with weight β
    student, teacher = build_net("mlp-tiny"), build_net("cnn-small")
    module = Feature(student, teacher, DistillConfig(hint_weight=2.0, shift=0), (1, 28, 28))
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    out = module(x, y)
    f_s, f_t = student.features(x), teacher.eval().features(x)
    expected = F.cross_entropy(student(x), y) + 2.0 * hint_loss(module.regressor(f_s), f_t)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


# --- the frozen teacher, the taps and the networks ---------------------------------------------


def test_teacher_is_frozen_in_eval_mode_and_out_of_the_checkpoint():
    teacher, student = build_net("cnn-small"), build_net("mlp")
    module = KINDS["relation"](student, teacher, DistillConfig(), (1, 28, 28))
    assert all(k.startswith("student.") for k in module.state_dict())
    assert {id(p) for p in module.parameters()} == {id(p) for p in student.parameters()}
    module.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    out = module(torch.rand(8, 1, 28, 28), torch.arange(8))
    out["loss"].backward()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN stats too
    module.double()  # .to(...) reaches the teacher
    assert next(teacher.parameters()).dtype == torch.float64
    assert set(out) == {"loss", "ce", "rkd_distance", "rkd_angle"}


def test_feature_tap_finds_the_head_of_any_classifier():
    # the DANN network's last Linear in modules() is the domain discriminator's; its forward calls
    # the label classifier's last: the tap must read that one's input
    net = build_digits_net("mnist", in_channels=1, image_size=28)
    assert last_linear(net, (1, 28, 28)) is net.classifier[-1]
    tap = FeatureTap(net, (1, 28, 28))
    net(torch.rand(3, 1, 28, 28))
    assert tap.dim == 100 and tap.value.shape == (3, 100)
    conv_head = nn.Sequential(nn.Conv2d(1, 10, 28), nn.Flatten())
    with pytest.raises(ConfigError, match="--kinds response"):
        FeatureTap(conv_head, (1, 28, 28))


def test_named_networks_sizes_and_model_files(tmp_path):
    params = {name: count_parameters(build_net(name)) for name in NETS.names()}
    assert 250_000 < params["cnn"] < 400_000 and 90_000 < params["mlp"] < 110_000
    assert params["mlp"] < params["cnn"] / 3
    for name in ("cnn", "mlp"):
        net = build_net(name, channels=3, size=32, num_classes=4).eval()
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 4)
        save_classifier(tmp_path / f"{name}.pt", net, "net", net.spec, list("abcd"), size=32, channels=3)
        back, info = load_classifier(tmp_path / f"{name}.pt")
        x = torch.rand(5, 3, 32, 32)
        assert torch.equal(back(x), net(x)) and info["classes"] == list("abcd")
    with pytest.raises(UnknownNameError, match="Did you mean 'mlp'"):
        build_net("mpl")


def test_registries_and_fingerprints():
    assert KINDS.names() == ["scratch", "response", "feature", "relation"]
    with pytest.raises(UnknownNameError, match="Did you mean 'relation'"):
        KINDS["relations"]
    cfg = DistillConfig()
    assert cfg.students() == ["scratch", "response", "feature", "relation"]
    a = cell_fingerprint(cfg, "response", 0, "t1")
    assert a == cell_fingerprint(replace(cfg, hint_weight=3.0), "response", 0, "t1")  # not its setting
    assert a != cell_fingerprint(replace(cfg, T=2.0), "response", 0, "t1")
    assert a != cell_fingerprint(cfg, "response", 0, "t2")  # another teacher
    assert not is_teacher_path("cnn") and is_teacher_path("runs/semi-1") and is_teacher_path("m.pt")


# --- training ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``dlapps distill`` end to end on the tiny setting, in this process."""
    out = tmp_path_factory.mktemp("distill") / "run"
    r = CliRunner().invoke(app, ["distill", *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_cli_end_to_end_writes_results_report_and_models(tiny_run):
    out, output = tiny_run
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "distill" and res["config"]["kind"] == "distill"
    assert res["T"] == 4.0 and res["alpha"] == 0.9 and res["teacher"]["trained_here"]
    assert res["teacher"]["source"].startswith("trained in this run: cnn-small")
    assert list(res["rows"]) == ["teacher", "scratch", "response", "feature", "relation"]
    for row in res["rows"].values():
        assert row["params"] > 0 and row["images_per_s"]["mean"] > 0 and 0 <= row["agreement"]["mean"] <= 1
    assert res["rows"]["teacher"]["params"] == count_parameters(build_net("cnn-small"))
    assert res["rows"]["relation"]["params"] == count_parameters(build_net("mlp-tiny"))  # no regressor
    assert res["rows"]["teacher"]["agreement"]["mean"] == 1.0
    for cell in ("teacher-seed0", "scratch-seed0", "response-seed0", "feature-seed0", "relation-seed0"):
        net, info = load_classifier(out / cell)
        assert info["classes"] == [str(i) for i in range(10)] and info["kind"] == "distill"
        assert (out / cell / "checkpoint.pt").is_file() and (out / cell / "final.json").is_file()
    assert load_classifier(out)[1]["kwargs"]["name"] == "mlp-tiny"  # the run's own model.pt: a student
    assert len(res["curves"]["response"]["agreement"]) == 8
    assert (out / "figures" / "curves.png").is_file()
    page = (out / "report.html").read_text()
    assert "agreement with teacher" in page and "data:image/png;base64" in page
    assert "student + RKD" in output and "| teacher |" in output


def test_distilled_student_on_a_tiny_real_problem_beats_chance(tiny_run):
    res = json.loads((tiny_run[0] / "results.json").read_text())
    acc = {k: r["test_acc"]["mean"] for k, r in res["rows"].items()}
    assert acc["teacher"] > 0.7, acc  # 512 digits, 3 epochs (students 8); 10 classes: chance is 0.1
    for kind in ("response", "feature", "relation"):
        assert acc[kind] > 0.5 and res["rows"][kind]["agreement"]["mean"] > 0.5, acc


def test_a_finished_run_is_a_teacher_and_a_rerun_reuses_every_cell(tiny_run, tmp_path):
    out, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")}
    cfg = DistillConfig(limit=512, teacher="cnn-small", student="mlp-tiny", teacher_epochs=3, epochs=8,
                        batch_size=32)
    again = E.run_distill(cfg, out, progress=False, workers=1)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")} == stamps  # nothing retrained
    first = json.loads((out / "results.json").read_text())
    assert comparable(again["rows"]) == comparable(first["rows"])
    # the teacher cell's model.pt as the teacher of a new run (any area's model.pt is read alike)
    cfg = DistillConfig(limit=256, teacher=str(out / "teacher-seed0"), kinds=["response"], epochs=1,
                        batch_size=32)
    res = E.run_distill(cfg, tmp_path / "loaded", progress=False, workers=1)
    assert not res["teacher"]["trained_here"] and str(out / "teacher-seed0") in res["teacher"]["source"]
    acc = first["rows"]["teacher"]["test_acc"]["mean"]
    assert res["rows"]["teacher"]["test_acc"]["mean"] == pytest.approx(acc)
    assert list(res["rows"]) == ["teacher", "scratch", "response"]
    assert not (tmp_path / "loaded" / "teacher-seed0").exists()


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = DistillConfig(limit=128, teacher="cnn-small", epochs=3, batch_size=32)
    data = E.load_data(cfg)
    teacher = build_net("cnn-small").eval()
    save_classifier(tmp_path / "teacher.pt", teacher, "net", teacher.spec, data.classes, size=28, channels=1)

    def job(name):
        return E.CellJob(cfg, "relation", 0, tmp_path / name, data, tmp_path / "teacher.pt", "fp")

    whole = E.train_cell(job("whole"))

    class Stop(Exception):
        pass

    real = E.Trainer

    def interrupted(*args, **kwargs):  # stops after epoch 2's evaluation, before its checkpoint
        def stop(epoch, module):
            if epoch == 2:
                raise Stop
        return real(*args, **kwargs, epoch_end=stop)

    monkeypatch.setattr(E, "Trainer", interrupted)
    with pytest.raises(Stop):
        E.train_cell(job("resumed"))
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(E, "Trainer", real)
    resumed = E.train_cell(job("resumed"))
    def same(final: dict) -> dict:
        return {k: v for k, v in comparable(final).items() if k != "cell"}

    assert same(resumed) == same(whole) and len(whole["history"]) == 3
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True)["state_dict"]
            for d in ("whole", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_killed_run_ends_as_an_uninterrupted_one(tmp_path):
    """SIGKILLed 3 times, resumed by rerunning the same command (tests/killing.py)."""
    args = ["distill", "--limit", "256", "--teacher", "cnn-small", "--teacher-epochs", "3", "--epochs", "4",
            "--batch-size", "16", "--kinds", "response,relation", "--workers", "1", "-q"]
    killed, whole = killed_and_whole(args, tmp_path)
    assert comparable(killed) == comparable(whole)


# --- bad input: one line, exit status 2 --------------------------------------------------------


def _fails(args: list[str], match: str) -> None:
    r = CliRunner().invoke(app, ["distill", *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], r.output
    assert "Traceback" not in r.output


def test_bad_input_is_one_clear_line(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    _fails(["--T", "0", *out], "--T (the temperature) must be positive")
    _fails(["--T", "-2", *out], "must be positive")
    _fails(["--alpha", "1.5", *out], "[0, 1]")
    _fails(["--alpha", "-0.1", *out], "[0, 1]")
    _fails(["--kinds", "response,relaton", *out], "Did you mean 'relation'")
    _fails(["--student", "mlpp", *out], "Did you mean 'mlp'")
    _fails(["--teacher", "cnnn", *out], "Did you mean 'cnn'")
    (tmp_path / "empty").mkdir()
    _fails(["--teacher", str(tmp_path / "empty"), *out], "not a finished run")
    _fails(["--teacher", str(tmp_path / "nowhere"), *out], "no such run directory")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    _fails(["--teacher", str(tmp_path / "junk.pt"), *out], "refusing to load")
    other = build_net("mlp-tiny", num_classes=3)
    save_classifier(tmp_path / "abc" / "model.pt", other, "net", other.spec, ["a", "b", "c"], size=28,
                    channels=1)
    _fails(["--teacher", str(tmp_path / "abc"), *out], "other classes")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"kind": "gan", "data": "mnist5k"}))
    _fails(["--config", str(config), *out], "kind 'gan'")
    assert not (tmp_path / "run").exists()


def test_data_errors_name_the_problem():
    with pytest.raises(DataError, match="other classes"):
        E.load_data(DistillConfig(), {"classes": ["x", "y"], "size": 28, "channels": 1})
    with pytest.raises(ConfigError, match="smaller than one batch"):
        DistillConfig(limit=10).validate()


def test_channels_last_is_a_speed_setting_only(tmp_path):
    """A cnn trains in NHWC by default; the memory format is in no fingerprint, so a run folder
    continues whichever layout it was started with; --no-channels-last parses."""
    cfg = DistillConfig(limit=64, teacher="cnn-small", teacher_epochs=1, batch_size=32)
    plain = replace(cfg, channels_last=False)
    assert teacher_fingerprint(cfg, 0) == teacher_fingerprint(plain, 0)
    assert cell_fingerprint(cfg, "response", 0, "t") == cell_fingerprint(plain, "response", 0, "t")
    data = E.load_data(cfg)
    for c, name in ((cfg, "nhwc"), (plain, "nchw")):
        E.train_cell(E.CellJob(c, E.TEACHER, 0, tmp_path / name, data, None, "fp"))
    conv = {name: torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]["body.4.weight"]
            for name in ("nhwc", "nchw")}  # 8 -> 16 channels
    assert conv["nhwc"].is_contiguous(memory_format=torch.channels_last) and not conv["nhwc"].is_contiguous()
    assert conv["nchw"].is_contiguous()
    _fails(["--no-channels-last", "--T", "0", "--out", str(tmp_path / "run")], "must be positive")
