"""Semi-supervised learning: Lee's α(t), the class-balanced labelled subset, pseudo-labels that
come from the network and never from the hidden labels, the methods' losses, resume, the CLI and
its bad inputs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.semi.config import SemiConfig
from dlapps.semi.experiment import SemiData, balanced_subset, make_split, train_cell
from dlapps.semi.pseudo_label import PseudoLabel, alpha_ramp, pseudo_label_loss
from killing import comparable, killed_and_whole


def test_alpha_ramp_at_t1_between_and_t2():
    t1, t2, af = 0.2, 0.6, 3.0
    assert alpha_ramp(0.0, af, t1, t2) == alpha_ramp(0.19999, af, t1, t2) == 0.0
    assert alpha_ramp(t1, af, t1, t2) == 0.0  # the ramp starts at 0 at T1
    assert alpha_ramp(0.3, af, t1, t2) == pytest.approx(0.75)  # (0.3 - 0.2) / 0.4 * 3
    assert alpha_ramp(0.4, af, t1, t2) == pytest.approx(1.5)
    assert alpha_ramp(t2, af, t1, t2) == alpha_ramp(1.0, af, t1, t2) == 3.0


def test_pseudo_label_method_uses_lee_weight_and_no_pseudo_loss_before_t1():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    m = PseudoLabel(net, SemiConfig(method_options={"pseudo-label": {"t1": 0.5, "t2": 0.75}}))
    xl, yl, xu = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0]), torch.rand(6, 1, 2, 2)
    early = m(xl, yl, xu, None, 0.25)
    assert early["alpha"] == 0.0 and torch.equal(early["loss"], F.cross_entropy(net(xl), yl))
    late = m(xl, yl, xu, None, 1.0)
    logits_u = net(xu)
    expected = F.cross_entropy(net(xl), yl) + 3.0 * F.cross_entropy(logits_u, logits_u.argmax(1))
    assert late["alpha"] == 3.0 and torch.allclose(late["loss"], expected)


def test_pseudo_label_loss_masks_unconfident_rows_and_divides_by_the_batch():
    logits = torch.tensor([[4.0, 0.0], [0.1, 0.0], [0.0, 5.0]])
    loss, confident, labels = pseudo_label_loss(lambda x: x, logits, threshold=0.9)
    assert labels.tolist() == [0, 0, 1] and confident.item() == pytest.approx(2 / 3)
    per_row = F.cross_entropy(logits, labels, reduction="none")
    assert loss.item() == pytest.approx(((per_row[0] + per_row[2]) / 3).item())


def test_fixmatch_learns_weak_view_labels_on_the_strong_view():
    teacher_view = torch.tensor([[0.0, 3.0], [2.0, 0.0]])
    student_view = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, _, labels = pseudo_label_loss(lambda x: x, teacher_view, 0.5, student_view=lambda _: student_view)
    assert labels.tolist() == [1, 0]
    assert loss.item() == pytest.approx(F.cross_entropy(student_view, labels).item())


@pytest.fixture(scope="module")
def mnist():
    from dlapps.data import load_domain

    return load_domain("mnist5k")


def test_labelled_subset_is_class_balanced_and_seed_determined(mnist):
    y = mnist.train_y
    a, b, c = balanced_subset(y, 1000, 0), balanced_subset(y, 1000, 0), balanced_subset(y, 1000, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.bincount(y[a], minlength=10).tolist() == [100] * 10
    assert len(set(a.tolist())) == 1000
    missing = balanced_subset(y, 27, 3, missing=7)
    counts = torch.bincount(y[missing], minlength=10).tolist()
    given = [c for i, c in enumerate(counts) if i != 7]
    assert counts[7] == 0 and sum(counts) == 27 and max(given) - min(given) <= 1


def _tiny(mnist) -> SemiData:
    keep = torch.arange(0, len(mnist.train_y), 4)  # 1,000 training images: a fast, real problem
    return SemiData(replace(mnist, train_x=mnist.train_x[keep], train_y=mnist.train_y[keep]), None)


@pytest.mark.parametrize("method", ["pseudo-label", "fixmatch"])
def test_pseudo_labels_come_from_the_network_not_the_hidden_labels(mnist, tmp_path, monkeypatch, method):
    """Poison the unlabelled set's hidden labels: training is bit-identical; only the diagnostic
    pseudo-label accuracy (measured with those labels after training) changes."""
    import dlapps.semi.experiment as experiment

    data = _tiny(mnist)
    config = SemiConfig(labels=[200], epochs=3, unlabelled_batch=64, tsne=False,
                        method_options={"pseudo-label": {"t1": 0.6, "t2": 0.9, "alpha": 0.5},
                                        "fixmatch": {"threshold": 0.5}})
    honest = train_cell(config, data, method, 200, 0, tmp_path / "honest", torch.device("cpu"), False)

    def poisoned_split(data, labels, seed):
        split = make_split(data, labels, seed)
        return replace(split, hidden_y=(split.hidden_y + 1 + torch.randint(0, 9, split.hidden_y.shape)) % 10)

    monkeypatch.setattr(experiment, "make_split", poisoned_split)
    poisoned = train_cell(config, data, method, 200, 0, tmp_path / "poisoned", torch.device("cpu"), False)
    assert poisoned["test_acc"] == honest["test_acc"] and poisoned["test_loss"] == honest["test_loss"]
    w1 = torch.load(tmp_path / "honest" / "model.pt")["state_dict"]
    w2 = torch.load(tmp_path / "poisoned" / "model.pt")["state_dict"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert poisoned["pseudo_acc"] < 0.2 < honest["pseudo_acc"]  # the diagnostic did see the poison


def test_full_is_the_only_method_that_reads_the_hidden_labels(mnist, tmp_path, monkeypatch):
    import dlapps.semi.experiment as experiment

    data = _tiny(mnist)
    config = SemiConfig(labels=[100], epochs=1, unlabelled_batch=64, tsne=False)
    honest = train_cell(config, data, "full", 100, 0, tmp_path / "a", torch.device("cpu"), False)
    monkeypatch.setattr(experiment, "make_split", lambda d, n, s: replace(
        make_split(d, n, s), hidden_y=torch.zeros_like(make_split(d, n, s).hidden_y)))
    poisoned = train_cell(config, data, "full", 100, 0, tmp_path / "b", torch.device("cpu"), False)
    assert poisoned["test_acc"] != honest["test_acc"]


def test_a_few_labels_train_a_classifier_well_above_chance(mnist, tmp_path):
    config = SemiConfig(labels=[200], epochs=8, unlabelled_batch=64, tsne=False)
    result = train_cell(config, _tiny(mnist), "supervised", 200, 0, tmp_path / "c", torch.device("cpu"),
                        False)
    assert result["test_acc"] > 0.6 and result["labelled_per_class"] == [20] * 10


@pytest.mark.slow
def test_semi_resumes_after_kills_with_the_numbers_of_an_uninterrupted_run(tmp_path):
    args = ["semi", "--labels", "100", "--methods", "pseudo-label,fixmatch", "--epochs", "2",
            "--unlabelled-batch", "192", "--option", "pseudo-label.t1=0", "--option", "pseudo-label.t2=0.3",
            "--workers", "1", "-q"]
    resumed, expected = killed_and_whole(args, tmp_path)
    assert comparable(resumed["runs"]) == comparable(expected["runs"])


def test_cli_end_to_end_writes_results_report_figures_and_a_loadable_model(tmp_path, mnist):
    from dlapps.models.export import load_classifier

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["semi", "--labels", "100", "--methods", "supervised,pseudo-label",
                                      "--epochs", "2", "--unlabelled-batch", "192", "--missing-class", "7",
                                      "--workers", "1", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "| 100 | pseudo-label |" in result.output and "lecture" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "semi" and results["data"]["missing_class"] == 7
    assert len(results["data"]["labelled_subsets"]["n100-seed0"]) == 100
    cell = next(r for r in results["runs"] if r["method"] == "supervised")
    assert cell["labelled_per_class"][7] == 0 and cell["per_class_acc"][7] == 0.0  # never learned
    for name in ("curves.png", "tsne.png", "per_class.png"):
        assert (out / "figures" / name).stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert 'id="semi"' in page and 'id="lecture"' in page and "<script" not in page
    net, info = load_classifier(out / "pseudo-label-n100-seed0")
    assert info["kind"] == "semi" and info["classes"] == mnist.classes
    with torch.no_grad():
        acc = (net(mnist.test_x.float() / 255).argmax(1) == mnist.test_y).float().mean().item()
    assert acc == pytest.approx(results["runs"][1]["test_acc"], abs=1e-6)  # the trained network


@pytest.mark.parametrize(("args", "message"), [
    (["--labels", "9"], "fewer than the 10 classes"),
    (["--labels", "5000"], "leaves no unlabelled images"),
    (["--labels", "ten"], "--labels takes whole numbers"),
    (["--missing-class", "11"], "is not a class of the data"),
    (["--missing-class", "cat"], "is not a class of the data"),
    (["--methods", "fixmach"], "fixmatch"),
    (["--option", "fixmatch.tau=0.9"], "unknown setting tau"),
    (["--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["semi", *args, "--out", str(tmp_path / "x"), "-q"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "results.json").exists()


def test_another_configuration_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(app, ["semi", "--labels", "100", "--methods", "supervised", "--epochs", "1",
                                     "--unlabelled-batch", "384", "--no-tsne", "--out", str(out), "-q"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, ["semi", "--labels", "200", "--methods", "supervised", "--epochs", "1",
                                     "--unlabelled-batch", "384", "--no-tsne", "--out", str(out), "-q"])
    assert again.exit_code == 2 and "other settings (labels)" in again.output


def test_channels_last_is_a_speed_setting_only(mnist, tmp_path):
    """The network trains in NHWC by default; the memory format is in no fingerprint and no settings
    check, so a run folder continues whichever layout it was started with; --no-channels-last reaches
    the config."""
    def conv(cell):
        return torch.load(cell / "model.pt")["state_dict"]["features.3.weight"]  # 32 -> 48 channels

    assert (SemiConfig().training_fingerprint("supervised", 100, 0)
            == SemiConfig(channels_last=False).training_fingerprint("supervised", 100, 0))
    config = SemiConfig(labels=[100], epochs=1, unlabelled_batch=384, tsne=False)
    train_cell(config, _tiny(mnist), "supervised", 100, 0, tmp_path / "c", torch.device("cpu"), False)
    assert conv(tmp_path / "c").is_contiguous(memory_format=torch.channels_last)
    assert not conv(tmp_path / "c").is_contiguous()
    out = tmp_path / "run"
    args = ["semi", "--labels", "100", "--methods", "supervised", "--epochs", "1",
            "--unlabelled-batch", "384", "--no-tsne", "--out", str(out), "-q"]
    plain = CliRunner().invoke(app, [*args, "--no-channels-last"])
    assert plain.exit_code == 0, plain.output
    assert json.loads((out / "config.json").read_text())["channels_last"] is False
    assert conv(out / "supervised-n100-seed0").is_contiguous()
    again = CliRunner().invoke(app, args)  # the default layout continues the folder
    assert again.exit_code == 0, again.output
