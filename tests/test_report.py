"""The report page in a real browser: Debian's headless Chromium, driven by Selenium."""

import os
import shutil

import pytest


def _driver(tmp_path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("DLAPPS_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _images_loaded(driver, at_least: int, min_width: int) -> bool:
    return driver.execute_script(
        f"return document.images.length >= {at_least} && "
        f"Array.from(document.images).every(i => i.complete && i.naturalWidth > {min_width})")


def _console_problems(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


@pytest.mark.browser
def test_report_loads_without_console_errors_and_shows_the_table(finished_run, tmp_path):
    from selenium.webdriver.common.by import By

    out, _ = finished_run
    driver = _driver(tmp_path)
    try:
        driver.get((out / "report.html").resolve().as_uri())
        table = driver.find_element(By.ID, "results")
        assert table.is_displayed()
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == ["source", "dann", "target"]
        assert _images_loaded(driver, 3, 100)
        assert _console_problems(driver) == []
    finally:
        driver.quit()


@pytest.mark.browser
def test_broken_page_would_be_caught(tmp_path):
    """The console check can fail: a page with a script error and a missing image reports both."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><img src='missing.png'>"
                    "<script>undefinedFunction()</script></body></html>")
    driver = _driver(tmp_path)
    try:
        driver.get(page.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert len(errors) >= 1
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def one_run_of_each_kind(finished_run, tmp_path_factory):
    """adapt (the shared default run), transfer, explain (on the adapt run's DANN network),
    generate, semi, distill and ssl runs, each as small as its command allows."""
    from PIL import Image
    from typer.testing import CliRunner

    from dlapps.cli import app
    from dlapps.data import load_domain

    root = tmp_path_factory.mktemp("kinds")
    adapt, _ = finished_run
    digit = root / "seven.png"
    mnistm = load_domain("mnistm5k", 28, 3)
    Image.fromarray(mnistm.test_x[(mnistm.test_y == 7).nonzero()[0, 0]].permute(1, 2, 0).numpy()).save(digit)
    commands = {
        "transfer": ["transfer", "--data", "digits", "--classifier", "svm,probe", "--per-class", "10",
                     "--test-per-class", "5", "--image-size", "32", "--C", "0.1,1", "--workers", "1"],
        "explain": ["explain", "saliency", str(digit), "--model", str(adapt / "dann-seed0"), "--method",
                    "vanilla,gradcam", "--rise-steps", "4"],
        "generate": ["gan", "train", "--epochs", "1", "--ngf", "8", "--ndf", "8", "--nz", "16",
                     "--batch-size", "64", "--n-samples", "200"],
        "semi": ["semi", "--labels", "100", "--methods", "supervised,pseudo-label", "--epochs", "2",
                 "--unlabelled-batch", "384", "--workers", "1"],
        "distill": ["distill", "--limit", "256", "--teacher", "cnn-small", "--student", "mlp-tiny",
                    "--teacher-epochs", "1", "--epochs", "1", "--kinds", "response"],
        "ssl": ["ssl", "--data", "mnist5k", "--pretrain-images", "500", "--methods", "random,rotation",
                "--epochs", "1", "--batch-size", "100", "--probe-labels", "10%,100%", "--finetune-labels",
                "10%", "--finetune-steps", "10", "--workers", "1"],
    }
    runs = {"adapt": adapt}
    for kind, args in commands.items():
        out = root / kind
        result = CliRunner().invoke(app, [*args, "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        runs[kind] = out
    return runs


def test_report_over_every_kind_is_one_page(one_run_of_each_kind, tmp_path):
    import json

    from typer.testing import CliRunner

    from dlapps.cli import app

    runs = one_run_of_each_kind
    for kind, run in runs.items():
        assert json.loads((run / "results.json").read_text())["kind"] == kind
    page = tmp_path / "index.html"
    result = CliRunner().invoke(app, ["report", *map(str, runs.values()), "--out", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<section class=run") == len(runs) == 7 and "<script" not in html
    for kind in runs:
        assert f"({kind}, " in html  # the index names each run's kind
    assert 'id="results"' in html  # adapt's table


def test_report_on_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from dlapps.cli import app

    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        result = CliRunner().invoke(app, ["report", str(target), "--out", str(tmp_path / "i.html")])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert str(target) in result.output
    assert not (tmp_path / "i.html").exists()


@pytest.mark.browser
def test_report_over_every_kind_in_a_browser(one_run_of_each_kind, tmp_path):
    from selenium.webdriver.common.by import By

    from dlapps.reports import render_index

    page = render_index(list(one_run_of_each_kind.values()), tmp_path / "index.html")
    driver = _driver(tmp_path)
    try:
        driver.get(page.resolve().as_uri())
        sections = driver.find_elements(By.CSS_SELECTOR, "section.run")
        assert len(sections) == 7 and all(s.is_displayed() for s in sections)
        assert len(driver.find_elements(By.CSS_SELECTOR, "ol li a")) == 7
        assert _images_loaded(driver, 8, 50)
        assert _console_problems(driver) == []
    finally:
        driver.quit()


def test_the_rule_line_states_lambda_and_the_domain_classifier():
    """Every run's line under the table names λ_max and the domain classifier it trained with; only
    the fast preset's development-pair choice says where it was chosen, and a backbone's heads are
    named as its own whatever ``domain_hidden`` holds."""
    from dlapps.adapt.report import robust_rule

    fast = robust_rule({"input_norm": "instance", "lambda_max": 0.3, "domain_hidden": [500, 500],
                        "warmup_acc": 0.5}, [{"gate_epoch": 2}])
    assert "; λ_max 0.3, domain classifier 500-500 (chosen on development pairs" in fast
    assert fast.endswith("opened after epoch 2")
    paper = robust_rule({"input_norm": "mean", "lambda_max": 1.0, "domain_hidden": None,
                         "warmup_acc": 0.0}, [])
    assert paper == ("input: minus the training mean (the papers'); λ_max 1, domain classifier the "
                     "architecture’s own; no warm-up (alignment terms from the first step, as the papers)")
    backbone = robust_rule({"input_norm": "instance", "lambda_max": 0.3, "domain_hidden": [500, 500],
                            "backbone": "efficientnet_lite0", "warmup_acc": 0.0}, [])
    assert "domain classifier the backbone’s own;" in backbone and "chosen" not in backbone
