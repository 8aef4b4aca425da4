"""dlapps ssl: the judges (probe, k-NN), the batches, the run end to end, resume and bad input.

The methods' own math is tested beside them: test_ssl_pretext.py, test_ssl_contrastive.py,
test_ssl_cluster.py, test_ssl_tl_vae.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.engine.batches import IndexedBatches, to_float
from dlapps.errors import ConfigError
from dlapps.ssl.config import SslConfig, label_count
from dlapps.ssl.evaluate import knn_accuracy, linear_probe
from dlapps.ssl.methods import METHODS
from killing import comparable, killed_and_whole

SMALL = ["--data", "mnist5k", "--pretrain-images", "1000", "--batch-size", "100", "--finetune-steps", "30",
         "--no-tsne", "--workers", "1", "-q"]


def test_label_amounts_are_percentages_or_counts_and_refused_when_empty_or_too_many():
    assert label_count("1%", 20000) == 200 and label_count("100%", 20000) == 20000
    assert label_count("600", 20000) == 600 and label_count(7, 10) == 7
    for bad, message in (("0", "no label"), ("0.001%", "no label"), ("30000", "has 20000"),
                         ("200%", "has 20000"), ("ten", "percentage like 1%")):
        with pytest.raises(ConfigError, match=message):
            label_count(bad, 20000)


def test_indexed_batches_hand_back_the_rows_they_name_and_follow_the_weights():
    x = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    batches = IndexedBatches(x, 5, seed=3)
    seen = []
    for xb, idx in batches.epoch(0):
        assert torch.equal(xb, to_float(x[idx]))
        seen += idx.tolist()
    assert sorted(seen) == list(range(20))  # a permutation per epoch
    assert seen == [int(i) for _, idx in IndexedBatches(x, 5, seed=3).epoch(0) for i in idx]
    weights = torch.zeros(20)
    weights[[2, 7]] = 1.0
    drawn = torch.cat([idx for _, idx in IndexedBatches(x, 5, 0, lambda: weights).epoch(1)])
    assert set(drawn.tolist()) == {2, 7} and len(drawn) == 20
    with pytest.raises(ConfigError, match="larger than the training set"):
        IndexedBatches(x, 21, 0)


def test_knn_votes_with_similarity_weights_on_a_hand_made_case():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    test = torch.tensor([[0.2, 1.0], [1.0, 0.05]])
    assert knn_accuracy(train, y, test, torch.tensor([1, 0]), k=1) == 1.0
    # k = 3: the query at 45° is nearer the class-1 point (cos .999 vs .707 and .78) but two class-0
    # points outvote it unless the weights exp(s / τ) are sharp: τ = .07 lets the nearest win
    q = torch.tensor([[0.3, 1.0]])
    assert knn_accuracy(train, y, q, torch.tensor([1]), k=3, temperature=0.07) == 1.0
    assert knn_accuracy(train, y, q, torch.tensor([0]), k=3, temperature=100.0) == 1.0


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 4
    f = torch.nn.functional.one_hot(y, 4).float() * 3 + 0.3 * torch.randn(200, 4, generator=g)
    assert linear_probe(f[:100], y[:100], f[100:], y[100:]) == 1.0
    shuffled = y[:100][torch.randperm(100, generator=g)]  # labels that say nothing about the features
    assert linear_probe(f[:100], shuffled, f[100:], y[100:]) < 0.5


def test_linear_probe_reaches_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(1)
    y = torch.arange(1200) % 5
    f = torch.randn(5, 16, generator=g)[y] + 1.5 * torch.randn(1200, 16, generator=g)  # overlapping classes
    scaler = StandardScaler().fit(f[:800].numpy())
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8)
    ref.fit(scaler.transform(f[:800].numpy()), y[:800].numpy())
    expected = float((ref.predict(scaler.transform(f[800:].numpy())) == y[800:].numpy()).mean())
    assert 0.5 < expected < 0.95  # a problem where the optimum matters
    assert linear_probe(f[:800], y[:800], f[800:], y[800:], c=0.5) == pytest.approx(expected, abs=0.0051)


def test_labels_reach_only_the_supervised_ceiling():
    from dlapps.ssl.experiment import build_method, load_data

    config = SslConfig(data="mnist5k", pretrain_images=500, methods=list(METHODS.names()),
                       probe_labels=["10%"], finetune_labels=["10%"]).validate()
    data = load_data(config)
    for name in ("random", "rotation", "simclr", "moco", "deepcluster", "dac", "supervised"):
        method = build_method(config, data, name, 0)
        assert (method.info.labels is not None) == (name == "supervised")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ssl") / "run"
    methods = "random,pixels,rotation,deepcluster,supervised"
    result = CliRunner().invoke(app, ["ssl", *SMALL, "--methods", methods, "--epochs", "2",
                                      "--probe-labels", "2%,100%", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cli_end_to_end_writes_the_table_figures_report_and_loadable_encoders(small_run):
    from dlapps.data import load_domain
    from dlapps.ssl.experiment import load_encoder

    out, output = small_run
    assert "| baseline | supervised |" in output and "| clustering | deepcluster |" in output
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "ssl" and results["data"]["pretrain"] == 1000
    rows = results["summary"]["methods"]
    assert set(rows) == {"random", "pixels", "rotation", "deepcluster", "supervised"}
    # the supervised ceiling beats random-init features (a floor that can fail)
    assert rows["supervised"]["probe"]["100%"]["mean"] > rows["random"]["probe"]["100%"]["mean"] + 0.03
    assert rows["supervised"]["probe"]["100%"]["mean"] > 0.85
    assert rows["pixels"]["finetune"]["1%"] is None  # n/a: no encoder
    deep = next(r for r in results["runs"] if r["method"] == "deepcluster")
    assert [h["epoch"] for h in deep["history"]] == [1, 2]
    assert all(0 < h["assign_nmi"] <= 1 for h in deep["history"]) and "nmi_previous" in deep["history"][1]
    assert all(h["pretext_acc"] is not None for h in deep["history"])
    for name in ("probe.png", "training.png", "clustering.png"):
        assert (out / "figures" / name).stat().st_size > 5000
    page = (out / "report.html").read_text()
    assert 'id="ssl"' in page and 'id="clustering"' in page and "<script" not in page
    # the saved encoder gives the features that were judged: its k-NN accuracy again
    encoder = load_encoder(out / "supervised-seed0" / "encoder.pt")
    d = load_domain("mnist5k")
    with torch.no_grad():
        f = encoder(d.test_x.float() / 255)
    assert f.shape == (len(d.test_y), encoder.dim) and torch.isfinite(f).all()


def test_ssl_resumes_after_kills_with_the_numbers_of_an_uninterrupted_run(tmp_path):
    # the two methods with the most state between steps: DeepCluster's assignments and sampling
    # weights, MoCo's queue and momentum encoder
    args = ["ssl", "--data", "mnist5k", "--pretrain-images", "500", "--batch-size", "50", "--epochs", "2",
            "--methods", "deepcluster,moco", "--probe-labels", "10%", "--finetune-labels", "10%",
            "--finetune-steps", "20", "--no-tsne", "--workers", "1", "-q"]
    resumed, expected = killed_and_whole(args, tmp_path)
    assert comparable(resumed["runs"]) == comparable(expected["runs"])


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "simclr,rotatoin"], "Did you mean 'rotation'"),
    (["--probe-labels", "0"], "no label"),
    (["--probe-labels", "2000"], "has 1000 images"),
    (["--finetune-labels", "0.5%"], "fewer than one label per class"),
    (["--methods", "jigsaw", "--image-size", "16"], "jigsaw"),
    (["--methods", "relative-patch", "--image-size", "16"], "relative-patch"),
    (["--methods", "simclr", "--option", "simclr.temperature=0"], "temperature"),
    (["--methods", "moco", "--option", "moco.temperature=-1"], "temperature"),
    (["--pretrain-images", "99999"], "more than the 4000 training images"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    base = [a for a in SMALL if a not in ("-q",)]
    result = CliRunner().invoke(app, ["ssl", *base, *args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_methods_list_names_every_method_with_its_family():
    result = CliRunner().invoke(app, ["ssl", "--methods", "list"])
    assert result.exit_code == 0
    for name, cls in METHODS.items():
        assert name in result.output and cls.family in result.output


def test_every_method_states_its_math():
    for name, cls in METHODS.items():
        module = __import__(cls.__module__, fromlist=["_"])
        assert len(module.__doc__ or "") > 300, name
        assert cls.family in ("baseline", "pretext", "contrastive", "clustering"), name
        assert cls.description, name
