"""`dlapps adapt compare`: the grid runs, resumes (finished cells skipped), and tabulates."""

import json

import pytest
from typer.testing import CliRunner

from dlapps.adapt import compare, experiment
from dlapps.adapt.config import preset
from dlapps.adapt.report import compare_markdown
from dlapps.cli import app
from dlapps.errors import ConfigError

PAIR = "mnist5k:digits"
BASE = dict(epochs=1, train_limit=64, tsne=False, a_distance=False)  # 2 steps per cell


@pytest.fixture
def spy(monkeypatch):
    calls = []
    real = experiment.train_cell

    def train_cell(config, pair, method, seed, *args, **kwargs):
        calls.append((config.target, method, seed))
        return real(config, pair, method, seed, *args, **kwargs)

    monkeypatch.setattr(experiment, "train_cell", train_cell)
    return calls


def test_grid_resumes_and_grows(tmp_path, spy):
    out = tmp_path / "grid"
    args = ["adapt", "compare", "--methods", "source", "--pairs", PAIR, "--seeds", "0", "--epochs", "1",
            "--train-limit", "64", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)  # the command is a thin wrapper over run_compare
    assert result.exit_code == 0, result.output
    assert "mnist5k → digits" in result.output and "Label-free selection" in result.output
    assert spy == [("digits", "source", 0)]  # --seeds 0: the one seed 0 (a list, as everywhere)
    first = json.loads((out / "results.json").read_text())
    cell = first["grid"][PAIR]["methods"]["source"]
    assert 0 <= cell["target_acc"]["mean"] <= 1 and cell["selection"]["oracle"]["oracle"] is True
    for name in ("results.json", "compare.md", "report.html", "figures/compare.png"):
        assert (out / name).is_file(), name
    final = out / "mnist5k-digits" / "source-seed0" / "final.json"
    stamp = final.stat().st_mtime_ns
    # the same command again trains nothing; a method added later trains only its own cells
    compare.run_compare(["source"], [PAIR], [0], out, preset("fast", **BASE), progress=False)
    again = compare.run_compare(["source", "coral"], [PAIR], [0], out, preset("fast", **BASE),
                                progress=False)
    assert spy == [("digits", "source", 0), ("digits", "coral", 0)]
    assert final.stat().st_mtime_ns == stamp
    assert set(again["grid"][PAIR]["methods"]) == {"source", "coral"}
    saved = json.loads((out / "results.json").read_text())
    assert saved["methods"] == ["source", "coral"] and saved["config"]["train_limit"] == 64
    assert saved["kind"] == "adapt" and saved["command"] == "compare" and saved["dlapps_version"]
    # a pair given its own methods tabulates only those (and trains nothing here: source is done)
    own = compare.run_compare(["source", "coral"], [PAIR], [0], out, preset("fast", **BASE), progress=False,
                              pair_methods={PAIR: ["source"]})
    assert set(own["grid"][PAIR]["methods"]) == {"source"} and len(spy) == 2
    with pytest.raises(ConfigError, match="other settings"):
        compare.run_compare(["source"], [PAIR], [0], out, preset("fast", **{**BASE, "epochs": 2}))


def test_cli_bad_pairs_and_methods(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["adapt", "compare", "--pairs", "mnist5k", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "SOURCE:TARGET" in bad.output
    bad = runner.invoke(app, ["adapt", "compare", "--methods", "dann+selftrain", "--pairs", PAIR,
                              "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "unknown method" in bad.output
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def _stat(mean, std=0.01):
    return {"mean": mean, "std": std, "values": [mean - std, mean + std]}


def test_table_bolds_the_best_per_pair_and_puts_the_paper_beside():
    sel = lambda last, oracle: {"last": {"target_acc": _stat(last)},  # noqa: E731
                                "oracle": {"target_acc": _stat(oracle), "oracle": True}}
    results = {
        "methods": ["source", "dann"], "pairs": ["mnist5k:mnistm5k", "mnist5k:digits"], "seeds": [0, 1],
        "config": {"epochs": 12, "preset": "fast", "batch_size": 32, "train_limit": None},
        "grid": {
            "mnist5k:mnistm5k": {
                "paper": {"source": (0.5749, 0.5225), "dann": (0.8149, 0.7666)},
                "methods": {"source": {"target_acc": _stat(0.6), "selection": sel(0.6, 0.61)},
                            "dann": {"target_acc": _stat(0.7), "selection": sel(0.7, 0.75)}}},
            "mnist5k:digits": {
                "paper": None,
                "methods": {"source": {"target_acc": _stat(0.8), "selection": sel(0.8, 0.81)},
                            "dann": {"target_acc": _stat(0.75), "selection": sel(0.75, 0.76)}}},
        },
    }
    md = compare_markdown(results)
    assert "| dann | **0.700 ± 0.010** (paper 0.815) | 0.750 ± 0.010 |" in md
    assert "| source | 0.600 ± 0.010 (paper 0.575) | **0.800 ± 0.010** |" in md
    assert "dann, last: within 2 points of the oracle on 1 of 2 pairs" in md


def test_ranking_lines_count_methods_above_source_and_compare_to_dann():
    from dlapps.adapt.report import ranking_lines

    accs = {"source": 0.5, "dann": 0.7, "coral": 0.45, "dann+self-train": 0.76, "target": 0.95, "dan": 0.1}
    results = {"pairs": ["a:b"],
               "grid": {"a:b": {"methods": {m: {"target_acc": {"mean": v}} for m, v in accs.items()}}}}
    (line,) = ranking_lines(results)
    assert line == ("a → b: 2 of 4 methods at or above source-only (0.500); at chance (< 0.15) where "
                    "source-only is not: dan; best dann+self-train 0.760 "
                    "(+6.0 points vs dann); dann+self-train +6.0 points vs dann")


def test_gap_lines_give_the_share_closed_and_the_criteria_near_the_oracle():
    from dlapps.adapt.report import gap_lines

    def row(acc, **sel):
        picks = {k: {"target_acc": {"mean": v}} for k, v in sel.items()}
        return {"target_acc": {"mean": acc}, "selection": picks}

    methods = {"source": row(0.5), "target": row(0.9), "dann": row(0.7),
               "mcc": row(0.8, entropy=0.79, dev=0.7, oracle=0.805)}
    (line,) = gap_lines({"pairs": ["a:b"], "grid": {"a:b": {"methods": methods}}})
    assert line == ("a → b: gap closed (source-only 0.500 → target 0.900): dann 50.0%, best mcc 75.0%; "
                    "within 2 points of the oracle for mcc: entropy")
