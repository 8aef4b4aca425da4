"""Issue 16's robust defaults: the warm-up gate, the failure warnings, and that neither reads a
target label."""

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from dlapps.adapt.config import AdaptConfig, preset
from dlapps.adapt.experiment import load_pair, run_adapt, train_cell
from dlapps.adapt.health import cell_warnings, effective_classes, method_warnings
from dlapps.adapt.methods import get_method
from dlapps.adapt.report import results_text
from dlapps.engine import distributed as ddp
from dlapps.engine import resolve_device
from dlapps.models import build_digits_net

GATED = SimpleNamespace(lambda_schedule="sigmoid", gamma=10.0, lambda_max=1.0, method_options={},
                        warmup_acc=0.5)


def test_effective_classes_counts_the_spread_of_predictions():
    one_hot = torch.eye(4)
    assert effective_classes(one_hot) == pytest.approx(4.0)
    assert effective_classes(one_hot[[0, 0, 0, 0]]) == pytest.approx(1.0)
    assert effective_classes(one_hot[[0, 0, 1, 1]]) == pytest.approx(2.0)


def _history(**last):
    first = {"epoch": 1, "source_acc": 0.9, "domain_acc": 0.8, "target_classes": 9.5}
    return [first, {**first, "epoch": 2, **last}]


def test_each_failure_signature_gives_its_line_and_a_healthy_run_none():
    assert cell_warnings(_history(), None, 10) == []
    kinds = {
        "source stuck": _history(source_acc=0.11),
        "domains not aligned": _history(domain_acc=1.0),
        "collapse": _history(target_classes=3.2),
    }
    for kind, history in kinds.items():
        (line,) = cell_warnings(history, None, 10)
        assert line.startswith(kind + ":"), line
    chance = [{"epoch": e, "source_acc": 0.9, "domain_acc": 0.52, "target_classes": 9.0} for e in (1, 2)]
    assert cell_warnings(chance, None, 10)[0].startswith("domain classifier at chance:")
    picks = {c: {"epoch": 1} for c in ("entropy", "im", "snd")} | {"dev": {"epoch": 2}}
    (line,) = cell_warnings(_history(), picks, 10)
    assert line.startswith("selection disagrees: 3 of 4") and "epoch 1 of 2" in line
    late = [{**_history()[0], "epoch": e} for e in range(1, 13)]
    assert cell_warnings(late, {c: {"epoch": 11} for c in ("entropy", "im", "snd")}, 10) == []
    cells = [{"seed": 0, "warnings": ["collapse: x"]}, {"seed": 2, "warnings": ["collapse: y"]}, {"seed": 1}]
    assert method_warnings(cells) == ["collapse (seeds 0, 2 of 3)"]


def test_the_gate_holds_the_alignment_at_zero_until_the_source_is_learned():
    dann = get_method("dann")(build_digits_net("mnist"), GATED)
    assert dann.alignment(0.5) == 0.0 and not dann.gate_open()
    dann.open_gate(0.3, 0.25)  # below the threshold: stays closed
    assert dann.alignment(0.5) == 0.0
    dann.open_gate(0.6, 0.25)
    assert dann.gate_open() and dann.alignment(0.25) == 0.0
    # λ restarts its schedule at p0: at p = 0.25 + 0.75 · 0.5 it is λ_p(0.5)
    assert dann.alignment(0.625) == pytest.approx(2 / (1 + torch.exp(torch.tensor(-5.0)).item()) - 1)
    dann.open_gate(0.9, 0.5)  # opened once, for good
    assert float(dann.opened_at) == 0.25
    assert "opened_at" in dann.state_dict()  # saved: a resumed run keeps its gate
    wrapped = get_method("dann+self-train")(build_digits_net("mnist"), GATED)
    wrapped.open_gate(0.9, 0.5)
    assert wrapped.gate_open() and wrapped.base_method.alignment(0.5) == 0.0
    ungated = get_method("dann")(build_digits_net("mnist"), replace(AdaptConfig(), warmup_acc=0.0))
    assert ungated.gate_open() and "opened_at" not in ungated.state_dict()


@pytest.fixture(scope="module")
def tiny():
    cfg = preset("fast", methods=["dann"], seeds=[0], epochs=3, train_limit=300, tsne=False,
                 a_distance=False, reverse_every=0, warmup_acc=0.5).validate()
    return cfg, load_pair(cfg)


def test_the_gate_never_reads_target_labels(tiny, tmp_path, one_torch_thread):
    """Two runs whose target labels differ (one permuted) open the gate at the same epoch and train
    to identical weights: nothing in training or in the gate depends on them."""
    cfg, pair = tiny
    device, dist = resolve_device("cpu"), ddp.from_env()
    shuffled = replace(pair, target=replace(pair.target, train_y=pair.target.train_y.flip(0)))
    runs = []
    for i, p in enumerate((pair, shuffled)):
        train_cell(cfg, p, "dann", 0, tmp_path / str(i), device, dist, progress=False)
        runs.append(torch.load(tmp_path / str(i) / "checkpoint.pt", weights_only=False))
    gates = [[r["gate"] for r in run["history"]] for run in runs]
    assert gates[0] == gates[1] and gates[0][-1]
    for key, value in runs[0]["module"].items():
        assert torch.equal(value, runs[1]["module"][key]), key


def test_a_run_whose_source_is_stuck_says_so(tmp_path, one_torch_thread):
    cfg = preset("fast", methods=["source"], seeds=[0], epochs=1, lr=1e-7, train_limit=200, tsne=False,
                 a_distance=False, selection=False)
    results = run_adapt(cfg, out=tmp_path / "r", progress=False, report=False)
    assert results["summary"]["methods"]["source"]["source_acc"]["mean"] < 0.15
    assert "⚠ source: source stuck (seed 0 of 1)" in results_text(results)
