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
        images_ok = driver.execute_script(
            "return document.images.length >= 3 && "
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 100)")
        assert images_ok
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
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
