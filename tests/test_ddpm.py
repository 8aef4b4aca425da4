"""DDPM: the forward process (closed form vs iterated steps), Algorithms 1 and 2 and DDIM checked
step by step against diffusers' schedulers on the same noise, guidance, the power spectrum, bad
input, training on real digits, resume on the engine and the generator wrapper."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from dlapps.engine.trainer import Step
from dlapps.errors import ConfigError, DataError, UnknownNameError
from dlapps.generate import metrics, sampling
from dlapps.generate.config import DdpmConfig
from dlapps.generate.data import GanData, load_gan_data, to_uint8
from dlapps.generate.ddpm import (
    DDPM,
    EpsNet,
    NoiseSchedule,
    ancestral_step,
    betas,
    ddim_step,
    ddim_timesteps,
    ddpm_loss,
    ddpm_trainer,
    guided_eps,
    load_ddpm,
    power_spectrum,
    q_sample,
    q_step,
    sample,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@pytest.fixture(scope="module")
def mnist() -> GanData:
    return load_gan_data("mnist5k", 32, 1)


def _subset(data: GanData, n: int) -> GanData:
    return replace(data, x=data.x[::8][:n], y=data.y[::8][:n])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=_gen(seed))


@pytest.fixture(scope="module")
def tiny_net() -> EpsNet:
    """A conditional ε-net on 8x8 images (3 classes + ∅), at its random initial weights."""
    torch.manual_seed(0)
    return EpsNet(1, 8, 8, n_classes=3).eval()


# --- the forward process ---------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_has_the_mean_and_variance_of_the_iterated_steps(schedule):
    s = NoiseSchedule(betas(schedule, 1000))
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0], dtype=torch.float64)
    zero, one = torch.zeros_like(x0), torch.ones_like(x0)
    # x_t = a x_{t-1} + b ε with ε independent: mean a·m, variance a²·v + b² (exactly, step by step)
    mean, var = x0.clone(), torch.zeros_like(x0)
    for t in range(1000):
        a, b = q_step(one, t, zero, s), q_step(zero, t, one, s)
        mean, var = a * mean, a**2 * var + b**2
        if t in (0, 1, 10, 250, 999):
            assert torch.allclose(mean, q_sample(x0, t, zero, s), rtol=1e-9, atol=1e-12)
            assert torch.allclose(var, q_sample(zero, t, one, s) ** 2, rtol=1e-9, atol=1e-12)
    assert q_step(one, 0, zero, s)[0] == math.sqrt(1 - s.betas[0])
    # Monte Carlo: 20,000 chains of 300 steps against the closed form's mean and variance
    n, k, x = 20_000, 300, 0.7
    g = _gen(0)
    chain = torch.full((n,), x, dtype=torch.float64)
    for t in range(k):
        chain = q_step(chain, t, torch.randn(n, generator=g, dtype=torch.float64), s)
    ab = float(s.alpha_bars[k - 1])
    assert abs(chain.mean() - math.sqrt(ab) * x) < 4 * math.sqrt((1 - ab) / n)
    assert abs(chain.var() / (1 - ab) - 1) < 4 * math.sqrt(2 / n)


def test_schedules_equal_diffusers_and_alpha_bar_falls_between_the_stated_endpoints():
    for schedule, name in DIFFUSERS_NAME.items():
        ours, ref = NoiseSchedule(betas(schedule, 1000)), DDPMScheduler(1000, beta_schedule=name)
        assert ours.betas.dtype == torch.float64 and ours.T == 1000
        assert torch.allclose(ours.betas.float(), ref.betas, rtol=1e-5, atol=1e-8)
        assert torch.allclose(ours.alpha_bars.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-9)
        ab = ours.alpha_bars
        assert (ab[1:] < ab[:-1]).all() and ab[0] < 1 and ab[-1] > 0
    linear = NoiseSchedule(betas("linear", 1000))
    assert linear.alpha_bars[0] == 1 - 1e-4 and math.isclose(linear.betas[-1], 0.02, rel_tol=1e-12)
    total = 1000 * (1e-4 + 0.02) / 2  # Σβ; −β − β² <= log(1 − β) <= −β
    squares = float(linear.betas.square().sum())
    assert math.exp(-total - squares) <= linear.alpha_bars[-1] <= math.exp(-total)
    cosine = NoiseSchedule(betas("cosine", 1000))

    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    assert math.isclose(cosine.alpha_bars[0], f(1 / 1000) / f(0), rel_tol=1e-12)
    assert math.isclose(cosine.alpha_bars[499], f(0.5) / f(0), rel_tol=1e-9)  # paper's t = T/2
    assert cosine.betas[-1] == 0.999 and cosine.alpha_bars[-1] < 1e-6  # f(1) = 0: β clipped


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_q_sample_equals_diffusers_add_noise(schedule):
    ours = NoiseSchedule(betas(schedule, 1000))
    ref = DDPMScheduler(1000, beta_schedule=DIFFUSERS_NAME[schedule])
    x0, eps = _randn(6, 1, 8, 8, seed=1), _randn(6, 1, 8, 8, seed=2)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    assert torch.allclose(q_sample(x0, t, eps, ours), ref.add_noise(x0, eps, t), atol=1e-5)


# --- the reverse process against diffusers -------------------------------------------------


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_one_ancestral_step_equals_diffusers_ddpm_step(schedule, clip):
    T = 1000
    ours = NoiseSchedule(betas(schedule, T))
    ref = DDPMScheduler(T, beta_schedule=DIFFUSERS_NAME[schedule], clip_sample=clip,
                        variance_type="fixed_small")
    x_t, eps = _randn(4, 1, 8, 8, seed=1), _randn(4, 1, 8, 8, seed=2)
    for t in (999, 500, 10, 1, 0):
        # diffusers draws its variance noise as torch.randn(shape, generator=...) when t > 0
        expected = ref.step(eps, t, x_t, generator=_gen(7)).prev_sample
        got = ancestral_step(eps, x_t, t, ours, _randn(*x_t.shape, seed=7), clip=clip)
        # diffusers works in float32: near t = 0, 1 − ᾱ_t is small and its rounding shows at ~1e-4
        assert torch.allclose(got, expected, rtol=1e-4, atol=5e-4), t
    assert torch.equal(ancestral_step(eps, x_t, 0, ours, None), ancestral_step(eps, x_t, 0, ours, x_t))


def test_ddim_timesteps_and_steps_equal_diffusers():
    T = 1000
    for steps in (1, 30, 50, 1000):
        ref = DDIMScheduler(T, clip_sample=False, set_alpha_to_one=True, steps_offset=0)
        ref.set_timesteps(steps)
        assert ddim_timesteps(T, steps) == ref.timesteps.tolist()
    assert ddim_timesteps(10, 3) == [6, 3, 0]
    for schedule, name in DIFFUSERS_NAME.items():
        ours = NoiseSchedule(betas(schedule, T))
        x_t, eps = _randn(4, 1, 8, 8, seed=1), _randn(4, 1, 8, 8, seed=2)
        ts = ddim_timesteps(T, 30)
        for clip in (False, True):
            ref = DDIMScheduler(T, beta_schedule=name, clip_sample=clip, set_alpha_to_one=True,
                                steps_offset=0)
            ref.set_timesteps(30)
            for t, t_prev in ((ts[0], ts[1]), (ts[15], ts[16]), (ts[-1], -1)):
                for eta in (0.0, 0.5, 1.0):
                    expected = ref.step(eps, t, x_t, eta=eta, generator=_gen(3),
                                        use_clipped_model_output=clip).prev_sample
                    got = ddim_step(eps, x_t, t, t_prev, ours, eta, _randn(*x_t.shape, seed=3), clip=clip)
                    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), (schedule, t, eta, clip)
    # η = 1 over a single step is Algorithm 2
    s, noise = NoiseSchedule(betas("linear", T)), _randn(4, 1, 8, 8, seed=4)
    for t in (999, 300, 1):
        ddpm = ancestral_step(eps, x_t, t, s, noise)
        assert torch.allclose(ddim_step(eps, x_t, t, t - 1, s, 1.0, noise), ddpm, atol=1e-5)


def test_whole_sampling_loops_equal_diffusers_pipelines(tiny_net):
    """DDIM (10 of 50 steps) and ancestral sampling (all 50) from the same x_T and the same noise
    stream, with diffusers' schedulers (x̂_0 clipped; for DDIM with ε recomputed from it) driving the
    same ε-net."""
    T, y = 50, torch.tensor([0, 1, 2, 0])
    s = NoiseSchedule(betas("linear", T))
    x_T = _randn(4, 1, 8, 8, seed=5)
    with torch.no_grad():
        ddim = DDIMScheduler(T, clip_sample=True, set_alpha_to_one=True, steps_offset=0)
        ddim.set_timesteps(10)
        x = x_T
        for t in ddim.timesteps:
            x = ddim.step(tiny_net(x, t.expand(4), y), t, x, use_clipped_model_output=True).prev_sample
        ours = sample(tiny_net, x_T.shape, s, y=y, sampler="ddim", steps=10, x_T=x_T)
        assert torch.allclose(ours, x.clamp(-1, 1), atol=1e-4)
        ddpm, g = DDPMScheduler(T, clip_sample=True, variance_type="fixed_small"), _gen(9)
        x = x_T
        for t in range(T - 1, -1, -1):
            x = ddpm.step(tiny_net(x, torch.full((4,), t), y), t, x, generator=g).prev_sample
        ours = sample(tiny_net, x_T.shape, s, y=y, sampler="ddpm", x_T=x_T, generator=_gen(9))
        assert torch.allclose(ours, x.clamp(-1, 1), atol=1e-4)


def test_ddim_is_a_function_of_x_T_and_frames_trace_the_trajectory(tiny_net):
    s = NoiseSchedule(betas("linear", 50))
    x_T = _randn(3, 1, 8, 8, seed=1)
    a = sample(tiny_net, x_T.shape, s, sampler="ddim", steps=10, x_T=x_T, generator=_gen(1))
    b = sample(tiny_net, x_T.shape, s, sampler="ddim", steps=10, x_T=x_T.clone(), generator=_gen(2))
    assert torch.equal(a, b) and a.abs().max() <= 1
    assert not torch.equal(a, sample(tiny_net, x_T.shape, s, steps=10, x_T=_randn(3, 1, 8, 8, seed=2)))
    ancestral = [sample(tiny_net, x_T.shape, s, sampler="ddpm", x_T=x_T, generator=_gen(k))
                 for k in (1, 1, 2)]
    assert torch.equal(ancestral[0], ancestral[1]) and not torch.equal(ancestral[0], ancestral[2])
    x0, frames = sample(tiny_net, x_T.shape, s, sampler="ddpm", x_T=x_T, generator=_gen(1), frames=6)
    assert torch.equal(x0, ancestral[0])
    assert [t for t, _ in frames] == [50, 40, 30, 20, 10, 0]
    assert torch.equal(frames[0][1], x_T) and torch.equal(frames[-1][1].clamp(-1, 1), x0)


# --- guidance and the network ----------------------------------------------------------------


def test_guidance_one_is_conditional_and_zero_unconditional(tiny_net):
    x, t, y = _randn(4, 1, 8, 8), torch.tensor([0, 5, 25, 49]), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        cond, uncond = tiny_net(x, t, y), tiny_net(x, t, torch.full_like(y, 3))
        assert (cond - uncond).abs().max() > 1e-3  # the label reaches the output
        assert torch.allclose(guided_eps(tiny_net, x, t, y, 1.0, 3), cond, atol=1e-6)
        assert torch.allclose(guided_eps(tiny_net, x, t, y, 0.0, 3), uncond, atol=1e-5)
        assert torch.allclose(guided_eps(tiny_net, x, t, y, 3.0, 3), uncond + 3 * (cond - uncond), atol=1e-5)
        assert torch.allclose(guided_eps(tiny_net, x, t, None, 3.0, 3), uncond, atol=1e-6)  # y None: ∅
    unconditional = EpsNet(3, 16, 8)
    assert unconditional(_randn(2, 3, 16, 16), torch.tensor([1, 2])).shape == (2, 3, 16, 16)
    assert not hasattr(unconditional.unet, "class_embedding") or unconditional.unet.class_embedding is None


@pytest.mark.parametrize(("make", "error", "text"), [
    (lambda: betas("linear", 1), ConfigError, "T >= 2"),
    (lambda: betas("cosin", 100), UnknownNameError, "Did you mean 'cosine'"),
    (lambda: betas("linear", 100, beta_end=1.5), ConfigError, "1.5"),
    (lambda: DdpmConfig(guidance=-1).validate(), ConfigError, "guidance"),
    (lambda: EpsNet(1, 30, 8), ConfigError, "got 30"),
    (lambda: ddim_timesteps(50, 51), ConfigError, "got 51"),
    (lambda: sample(None, (1, 1, 8, 8), NoiseSchedule(betas("linear", 10)), sampler="ddpn"), UnknownNameError,
     "Did you mean 'ddpm'"),
])
def test_bad_input_is_one_line(make, error, text):
    with pytest.raises(error, match=text) as info:
        make()
    assert "\n" not in str(info.value)


def test_load_ddpm_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(DataError, match="config.json"):
        load_ddpm(tmp_path)


# --- the Fourier view ------------------------------------------------------------------------


def test_power_spectrum_of_noise_is_flat_of_digits_falls(mnist):
    freqs, flat = power_spectrum(2 * _randn(64, 1, 32, 32))
    assert len(freqs) == 16 and freqs[0] == 1 / 32 and freqs[-1] == 0.5
    assert ((flat > 0.8 * 4) & (flat < 1.2 * 4)).all()  # white noise of variance 4: flat at 4
    x0 = mnist.x[:256].float() / 127.5 - 1
    _, digits = power_spectrum(x0)
    assert digits[0] > 1000 * digits[-1] and (digits[:10].diff() < 0).all()
    slope = torch.linalg.lstsq(torch.stack([freqs.log(), torch.ones(16, dtype=torch.float64)], 1),
                               digits.log()[:, None]).solution[0]
    assert slope < -2  # steeper than 1/f²
    # x_t's spectrum is ᾱ S(f) + (1 − ᾱ): noise overtakes the high frequencies first
    s = NoiseSchedule(betas("linear", 1000))
    t = int((s.alpha_bars < 0.5).nonzero()[0])
    ab = float(s.alpha_bars[t])
    _, noisy = power_spectrum(q_sample(x0, t, _randn(*x0.shape), s))
    assert torch.allclose(noisy, ab * digits + 1 - ab, rtol=0.1)
    snr = ab * digits / (1 - ab)
    assert snr[0] > 1 > snr[-1]


# --- training on the engine ------------------------------------------------------------------


def test_a_few_dozen_steps_on_real_digits_lower_the_loss_and_the_ema_follows(mnist):
    data = _subset(mnist, 256)
    cfg = DdpmConfig(width=8, patch=1, conditional=True, batch_size=16, lr=2e-3, ema=0.9, p_uncond=0.2)
    torch.manual_seed(0)
    ddpm = DDPM(cfg, n_classes=10)
    step = Step(ddpm.optimizers(cfg))
    x0 = data.x.float() / 127.5 - 1

    def held_loss() -> float:  # the same t and ε every time
        torch.manual_seed(123)
        with torch.no_grad():
            return ddpm_loss(ddpm.net, x0, data.y, ddpm.schedule).item()

    before = held_loss()
    order = torch.randperm(256, generator=_gen(0))
    for i in range(24):
        idx = order[(16 * i) % 256:][:16]
        ema_before = [p.clone() for p in ddpm.ema_net.parameters()]
        step.index = i + 1
        out = ddpm.training_step((data.x[idx].float() / 255, data.y[idx], None, None), 0.0, step)
    after = held_loss()
    assert 0.9 < before < 1.2  # at init ε_θ is about 0: E‖ε‖² = 1
    assert after < 0.35, (before, after)
    assert isinstance(out["loss"], float)
    for p_ema, old, p in zip(ddpm.ema_net.parameters(), ema_before, ddpm.net.parameters(), strict=True):
        d = min(0.9, 25 / 34)  # the warm-up's (1 + n)/(10 + n) at step n = 24
        assert torch.allclose(p_ema, d * old + (1 - d) * p, atol=1e-6)
        assert not p_ema.requires_grad
    assert not torch.equal(next(ddpm.ema_net.parameters()), next(ddpm.net.parameters()))


def _fit(cfg: DdpmConfig, data: GanData, run_dir) -> DDPM:
    trainer = ddpm_trainer(cfg, data, run_dir, progress=False, tensorboard=False)
    trainer.fit()
    return trainer.module


def test_resumed_run_ends_equal_to_uninterrupted_ema_included(mnist, tmp_path):
    data = _subset(mnist, 128)
    cfg = DdpmConfig(width=8, timesteps=50, sample_steps=1, guidance=1.0, conditional=True, batch_size=32,
                     ema=0.9, epochs=2)  # guidance 1: the epoch grids' one forward pass per step
    whole = _fit(cfg, data, tmp_path / "whole")
    _fit(replace(cfg, epochs=1), data, tmp_path / "cut")
    torch.randn(100)  # the interrupted process' RNG drifts; the checkpoint must restore it
    resumed = _fit(cfg, data, tmp_path / "cut")
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and any(k.startswith("ema_net.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["ema_net.unet.conv_out.weight"], a["net.unet.conv_out.weight"])
    assert sorted(p.name for p in (tmp_path / "cut" / "figures" / "epochs").iterdir()) == \
        ["epoch_001.png", "epoch_002.png"]
    loaded, loaded_cfg, state = load_ddpm(tmp_path / "cut")
    assert loaded_cfg == cfg and state["epoch"] == 2 and loaded.n_classes == 10 and not loaded.training
    assert all(torch.equal(v, a[k]) for k, v in loaded.state_dict().items())
    assert torch.equal(metrics.generate(loaded.generator(), 12, seed=0, n_classes=10)[0],
                       metrics.generate(whole.generator(), 12, seed=0, n_classes=10)[0])


def test_the_generator_is_a_g_of_x_T_for_the_gan_tools():
    cfg = DdpmConfig(width=8, timesteps=50, sample_steps=2, conditional=True)
    torch.manual_seed(0)
    ddpm = DDPM(cfg, n_classes=10).eval()
    g = ddpm.generator()  # z = x_T, the EMA net, DDIM with the config's steps and guidance
    assert g.nz == 32 * 32 and g.n_classes == 10 and g.net is ddpm.ema_net
    x, y = metrics.generate(g, 12, seed=0, n_classes=10)
    assert x.shape == (12, 1, 32, 32) and x.abs().max() <= 1 and y.tolist() == [i % 10 for i in range(12)]
    z = torch.randn(12, g.nz, generator=_gen(20_000))  # what metrics.generate drew
    expected = sample(ddpm.ema_net, (12, 1, 32, 32), ddpm.schedule, y=y, guidance=cfg.guidance, steps=2,
                      x_T=z.view(12, 1, 32, 32))
    assert torch.equal(x, expected)
    assert sampling.interpolate(g, pairs=2, steps=3, spherical=True).shape == (6, 1, 32, 32)
    assert sampling.class_grid(g, columns=1).shape == (10, 1, 32, 32)
    z, y = _randn(2, 32 * 32), torch.tensor([3, 4])
    ancestral = [ddpm.generator(sampler="ddpm", seed=k)(z, y) for k in (0, 0, 1)]
    assert torch.equal(ancestral[0], ancestral[1]) and not torch.equal(ancestral[0], ancestral[2])
    # the trajectory figure: x_T … x_0 per row, as the generator samples
    rows = ddpm.trajectory(2, seed=5)
    assert ddpm.trajectory_frames == 3 and rows.shape == (6, 1, 32, 32) and rows.dtype == torch.uint8
    z = torch.randn(2, g.nz, generator=_gen(5))
    assert torch.equal(rows[0::3], to_uint8(z.view(2, 1, 32, 32)))
    assert torch.equal(rows[2::3], to_uint8(g(z, torch.arange(2))))
