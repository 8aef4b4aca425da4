"""The training loop: determinism, exact resume, NaN handling, checkpoint safety, bad input."""

import os
import pickle
from types import SimpleNamespace

import pytest
import torch

from dlapps.adapt.methods import get_method
from dlapps.engine import Labelled, PairedBatches, Trainer, seed_everything
from dlapps.engine.checkpoint import CHECKPOINT, load_checkpoint
from dlapps.engine.schedules import annealed
from dlapps.errors import CheckpointError, ConfigError, NonFiniteLossError
from dlapps.models import build_digits_net

CFG = SimpleNamespace(lambda_schedule="sigmoid", gamma=10.0, lambda_max=1.0)


def make_trainer(digits_pair, run_dir, epochs=3, seed=0, method="dann", n=512, init_seed=None,
                 evaluate=None, batch_size=64, **speed):
    source, target = digits_pair
    seed_everything(seed if init_seed is None else init_seed)
    net = build_digits_net("mnist", 3, 28, 10, [0.3, 0.3, 0.3])
    m = get_method(method)(net, CFG)
    batches = PairedBatches(Labelled(source.train_x[:n], source.train_y[:n]),
                            Labelled(target.train_x[:n], target.train_y[:n]), batch_size, seed)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    return Trainer(m, batches, opt, annealed(0.01), epochs, run_dir, evaluate=evaluate,
                   progress=False, tensorboard=False, fingerprint=f"{method}-{seed}", **speed)


def _params(trainer):
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}


def test_same_seed_same_numbers(digits_pair, tmp_path):
    a = make_trainer(digits_pair, tmp_path / "a", epochs=2)
    a.fit()
    b = make_trainer(digits_pair, tmp_path / "b", epochs=2)
    b.fit()
    pa, pb = _params(a), _params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    c = make_trainer(digits_pair, tmp_path / "c", epochs=2, seed=1)
    c.fit()
    assert not torch.equal(pa["net.features.0.weight"], _params(c)["net.features.0.weight"])


class Killed(Exception):
    pass


SPEED = {"channels_last": True, "cpu_amp": True}


@pytest.mark.parametrize(("method", "speed"), [("dann", {}), ("dann+self-train", {}),  # teacher + shifts
                                               ("dann", SPEED)])  # NHWC weights, CPU bf16 where native
def test_resume_equals_uninterrupted(digits_pair, tmp_path, method, speed):
    full = make_trainer(digits_pair, tmp_path / "full", epochs=3, method=method, **speed)
    full_history = full.fit()

    def die_in_epoch_two(module):
        if len(calls) == 1:
            raise Killed
        calls.append(1)
        return {}

    calls = []
    killed = make_trainer(digits_pair, tmp_path / "run", epochs=3, evaluate=die_in_epoch_two,
                          method=method, **speed)
    with pytest.raises(Killed):
        killed.fit()
    assert load_checkpoint(tmp_path / "run")["epoch"] == 1
    # a new process: fresh module and optimizer (even initialised differently), same run dir
    resumed = make_trainer(digits_pair, tmp_path / "run", epochs=3, init_seed=123, method=method, **speed)
    history = resumed.fit()
    p_full, p_res = _params(full), _params(resumed)
    assert all(torch.equal(p_full[k], p_res[k]) for k in p_full)
    assert [h["step"] for h in history] == [h["step"] for h in full_history]
    # and the log holds each step once
    from dlapps.engine.runlog import read_metrics

    steps = [r["step"] for r in read_metrics(tmp_path / "run") if r["kind"] == "step"]
    assert steps == sorted(set(steps))


def test_finished_run_is_not_retrained(digits_pair, tmp_path):
    t = make_trainer(digits_pair, tmp_path, epochs=1)
    t.fit()
    mtime = os.stat(tmp_path / CHECKPOINT).st_mtime_ns
    again = make_trainer(digits_pair, tmp_path, epochs=1)
    assert len(again.fit()) == 1 and os.stat(tmp_path / CHECKPOINT).st_mtime_ns == mtime


def test_nan_loss_stops_with_the_step_and_keeps_checkpoint(digits_pair, tmp_path):
    t = make_trainer(digits_pair, tmp_path, epochs=3)
    original_forward = t.module.forward
    steps = []

    def poisoned(*args):
        steps.append(1)
        out = original_forward(*args)
        if len(steps) == 11:  # the 11th step, in epoch 2 (8 steps per epoch)
            out["loss"] = out["loss"] * float("nan")
        return out

    t.module.forward = poisoned
    with pytest.raises(NonFiniteLossError, match="step 11 \\(epoch 2\\)") as err:
        t.fit()
    assert err.value.step == 11
    assert load_checkpoint(tmp_path)["epoch"] == 1  # last good checkpoint kept


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_corrupt_checkpoint_is_refused_and_run_dir_untouched(digits_pair, tmp_path):
    make_trainer(digits_pair, tmp_path, epochs=1).fit()
    ckpt = tmp_path / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="corrupt"):
        make_trainer(digits_pair, tmp_path, epochs=2).fit()
    assert _snapshot(tmp_path) == before


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EVIL_MARKER']}",))


def test_crafted_pickle_checkpoint_does_not_run_code(digits_pair, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"module": Evil()}, run / CHECKPOINT)
    # the same bytes would run code with a plain unpickler:
    pickle.loads(pickle.dumps(Evil()))
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refusing"):
        make_trainer(digits_pair, run, epochs=1).fit()
    assert not marker.exists()


def test_checkpoint_of_another_configuration_is_refused(digits_pair, tmp_path):
    make_trainer(digits_pair, tmp_path, epochs=1).fit()
    with pytest.raises(CheckpointError, match="another configuration"):
        make_trainer(digits_pair, tmp_path, epochs=2, seed=1).fit()


def test_bad_numbers_are_clear_errors(digits_pair, tmp_path):
    with pytest.raises(ConfigError, match="epochs"):
        make_trainer(digits_pair, tmp_path, epochs=0)
    with pytest.raises(ConfigError, match="larger than the source training set"):
        make_trainer(digits_pair, tmp_path, n=100, batch_size=128)


def test_batches_hide_target_labels_unless_asked(digits_pair):
    source, target = digits_pair
    s = Labelled(source.train_x[:128], source.train_y[:128])
    t = Labelled(target.train_x[:128], target.train_y[:128])
    xs, ys, xt, yt = next(PairedBatches(s, t, 32, 0).epoch(0))
    assert yt is None and xs.dtype == torch.float32 and xs.min() >= 0 and xs.max() <= 1
    assert next(PairedBatches(s, t, 32, 0, target_labels=True).epoch(0))[3] is not None
    # ranks take disjoint halves of the same global batch
    full = next(PairedBatches(s, t, 32, 0).epoch(0))[1]
    halves = [next(PairedBatches(s, t, 32, 0, rank=r, world=2).epoch(0))[1] for r in (0, 1)]
    assert sorted(torch.cat(halves).tolist()) == sorted(full.tolist())


def test_run_parallel_keeps_job_order_and_raises_worker_errors():
    import math

    from dlapps.engine.parallel import resolve_workers, run_parallel

    jobs = [(n,) for n in (5, 3, 7, 1)]
    assert run_parallel(math.factorial, jobs, workers=2, progress=False) == [120, 6, 5040, 1]
    assert run_parallel(math.factorial, jobs, workers=1, progress=False) == [120, 6, 5040, 1]
    with pytest.raises(ValueError, match="negative"):
        run_parallel(math.factorial, [(3,), (-1,)], workers=2, progress=False)
    assert resolve_workers(8, 3) == 3 and resolve_workers(None, 1) == 1 and resolve_workers(0, 4) == 1


def test_input_errors_raised_in_a_worker_keep_their_class_and_message():
    """Without a ``__reduce__`` an error whose ``__init__`` takes other arguments than its message
    cannot be unpickled, and a bad name in a worker became an opaque BrokenProcessPool."""
    import pickle

    from dlapps.adapt.methods import get_method
    from dlapps.engine.parallel import run_parallel
    from dlapps.errors import NonFiniteLossError, UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'dann'"):
        run_parallel(get_method, [("dann",), ("dnn",)], workers=2, progress=False)
    error = pickle.loads(pickle.dumps(NonFiniteLossError(7, 2, {"loss": float("nan")})))
    assert (error.step, error.epoch) == (7, 2) and "step 7 (epoch 2)" in str(error)


def test_checkpoint_of_the_old_layout_resumes(digits_pair, tmp_path):
    """A run directory checkpointed by dlapps before the renovation (one plain optimizer state)
    continues, and ends with the numbers of an uninterrupted run."""
    full = make_trainer(digits_pair, tmp_path / "full", epochs=2)
    full.fit()
    calls = []

    def die_in_epoch_two(module):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return {}

    part = make_trainer(digits_pair, tmp_path / "old", epochs=2, evaluate=die_in_epoch_two)
    with pytest.raises(Killed):
        part.fit()
    path = tmp_path / "old" / CHECKPOINT
    state = torch.load(path, weights_only=True)
    state["optimizer"] = state["optimizer"]["main"]  # the layout dlapps 0.1.0 wrote
    torch.save(state, path)
    resumed = make_trainer(digits_pair, tmp_path / "old", epochs=2, init_seed=123)
    resumed.fit()
    pa, pb = _params(full), _params(resumed)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_eval_mode_restores_the_previous_mode_even_when_the_block_raises():
    from dlapps.engine.batches import eval_mode

    net = torch.nn.Sequential(torch.nn.BatchNorm1d(2), torch.nn.Dropout(0.5))
    with eval_mode(net):
        assert not net.training and not net[0].training
    assert net.training and net[1].training
    net.eval()
    with eval_mode(net):
        pass
    assert not net.training  # a module in eval mode stays there
    net.train()
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("boom")
    assert net.training


def test_frozen_skips_weight_gradients_keeps_input_gradients_and_restores():
    from dlapps.engine.batches import frozen

    torch.manual_seed(0)
    d = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    d[2].bias.requires_grad_(False)  # a parameter frozen before stays frozen after
    x = torch.randn(5, 3, requires_grad=True)
    (want,) = torch.autograd.grad(d(x).sum(), x)
    with frozen(d):
        out = d(x)
    out.sum().backward()  # backward after the block: the graph was built without D's weights
    assert torch.allclose(x.grad, want)
    assert all(p.grad is None for p in d.parameters())
    assert [p.requires_grad for p in d.parameters()] == [True, True, True, False]
    with pytest.raises(RuntimeError), frozen(d):
        raise RuntimeError("boom")
    assert [p.requires_grad for p in d.parameters()] == [True, True, True, False]


def test_speed_options_change_the_layout_and_precision_not_the_learning(digits_pair, tmp_path):
    """channels_last puts every conv weight in NHWC; cpu_amp autocasts to bf16 exactly where the
    CPU has native bf16; both together still learn the digits (source accuracy over a floor)."""
    from dlapps.engine.device import autocast, cpu_has_bf16

    cpu = torch.device("cpu")
    with autocast(cpu, True):  # the default: no CPU autocast
        assert not torch.is_autocast_enabled("cpu")
    with autocast(cpu, True, cpu=True):
        assert torch.is_autocast_enabled("cpu") == cpu_has_bf16()
    with autocast(cpu, False, cpu=True):  # --no-amp wins
        assert not torch.is_autocast_enabled("cpu")
    fast = make_trainer(digits_pair, tmp_path, epochs=2, n=2048, method="source", **SPEED)
    conv = fast.module.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    fast.fit()
    source = digits_pair[0]
    fast.module.eval()
    with torch.no_grad():
        acc = (fast.module.logits(source.test_x[:500].float() / 255).argmax(1) == source.test_y[:500]).float()
    assert acc.mean() > 0.85  # 0.93 with or without the options


def test_alignment_losses_stay_float32_under_bf16_autocast():
    from dlapps.adapt.losses import class_confusion, coral, covariance

    g = torch.Generator().manual_seed(0)
    xs, xt = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g) * 1.01
    logits = torch.randn(64, 10, generator=g)
    exact = coral(xs, xt), class_confusion(logits, 2.5), covariance(xs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = coral(xs, xt), class_confusion(logits, 2.5), covariance(xs)
    for a, b in zip(exact, under, strict=True):
        assert b.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-6, atol=1e-9)
