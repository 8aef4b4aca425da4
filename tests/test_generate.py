"""``dlapps generate``: GANs, VAEs and DDPMs on the same data in one run and one table; the
registry of model names; bad input refused in one line; any model's run drawn from again."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.generate.config import DdpmConfig, GanConfig, VaeConfig
from dlapps.generate.models import MODELS, configure, family_of, model_name, parse_models
from killing import comparable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"cdcgan": "epochs=1 ngf=8 ndf=8 nz=16 batch_size=50",
        "cvae": "epochs=2 width=8 nz=4 iwae_k=20 eval_images=40",
        "cddpm": "epochs=1 width=8 timesteps=50 sample_steps=4 batch_size=50"}


def _options(models: dict[str, str]) -> list[str]:
    return [a for name, settings in models.items() for kv in settings.split()
            for a in ("--option", f"{name}.{kv}")]


def test_registry_names_families_and_conditioning():
    bases = {"gan": GanConfig(), "vae": VaeConfig(), "ddpm": DdpmConfig()}
    for name in MODELS:
        cfg = configure(name, bases[family_of(name)])
        assert model_name(cfg) == name and cfg.conditional == name.startswith("c")
    assert parse_models("ddpm, cvae") == ["ddpm", "cvae"]
    with pytest.raises(UnknownNameError, match="Did you mean 'ddpm'"):
        parse_models("dcgan,ddmp")
    with pytest.raises(ConfigError, match="twice"):
        parse_models("vae,vae")


def test_every_family_in_one_run_one_table_then_drawn_again(tmp_path, digit_folder):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["generate", "--data", f"imagefolder:{digit_folder}", "--models", "cdcgan,cvae,cddpm",
            "--n-samples", "100", "--workers", "1", "--out", str(out), "--quiet", *_options(TINY)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    assert list(results["variants"]) == results["models"] == ["cdcgan", "cvae", "cddpm"]
    for name, row in results["variants"].items():
        for key in ("fid", "kid", "label_acc", "params", "train_seconds", "sample_seconds_per_1000"):
            assert key in row, (name, key)
        cell = out / f"{name}-seed0"
        for fig in ("samples.png", "curves.png", "interpolation_slerp.png", "class_grid.png",
                    "confusion.png"):
            assert (cell / "figures" / fig).is_file(), (name, fig)
    cvae = json.loads((out / "cvae-seed0" / "results.json").read_text())
    assert cvae["iwae"] >= cvae["elbo"] and cvae["iwae_k"] == 20 and cvae["eval_images"] == 40
    assert (out / "cvae-seed0" / "figures" / "reconstruction.png").is_file()
    assert (out / "cddpm-seed0" / "figures" / "trajectory.png").is_file()
    assert "elbo" not in results["variants"]["cddpm"]
    for fig in ("samples.png", "curves.png", "interpolations.png", "spectrum.png"):
        assert (out / "figures" / fig).is_file(), fig
    page = (out / "report.html").read_text()
    assert "test ELBO" in page and page.count("<img") >= 4
    # the same command again keeps every finished cell: the same numbers
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert comparable(json.loads((out / "results.json").read_text())["variants"]) == \
        comparable(results["variants"])
    # `dlapps gan`'s drawings read a VAE's and a DDPM's run as well
    for args, figure in ((["sample", str(out / "cddpm-seed0"), "--class", "3", "--n", "10"], "samples.png"),
                         (["interpolate", str(out / "cvae-seed0"), "--slerp"], "interpolation_slerp.png"),
                         (["grid", str(out / "cvae-seed0")], "class_grid.png")):
        dest = tmp_path / args[0]
        r = runner.invoke(app, ["generate", *args, "--out", str(dest)])
        assert r.exit_code == 0, r.output
        assert (dest / figure).is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "dcgan,ddmp"], "Did you mean 'ddpm'"),
    (["--models", "ddpm", "--option", "ddpm.schedule=cosin"], "Did you mean 'cosine'"),
    (["--models", "ddpm", "--option", "ddpm.timesteps=1"], "T >= 2"),
    (["--models", "ddpm", "--option", "ddpm.beta_end=1.5"], "β endpoints"),
    (["--models", "cddpm", "--option", "cddpm.guidance=-1"], "guidance scale must be >= 0"),
    (["--models", "ddpm", "--option", "ddpm.shedule=linear"], "unknown setting shedule"),
    (["--models", "ddpm", "--option", "vae.beta=4"], "not among the models"),
    (["--size", "48"], "--size must be one of"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    r = CliRunner().invoke(app, ["generate", *args, "--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "run").exists()
