"""`serket-ray report`: the page of a run, opened in a real headless browser (Chromium)."""

import shutil

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from launch import cli, run_dir, run_report

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """A small tutorial run on user files (3 rounds), with its report."""
    folder = tmp_path_factory.mktemp("report")
    np.save(folder / "data.npy", digits.images)
    np.savetxt(folder / "labels.txt", digits.labels, fmt="%d")
    code = cli.main([
        "tutorial", "--data", str(folder / "data.npy"), "--labels", str(folder / "labels.txt"),
        "--rounds", "3", "--epochs", "3", "--batch-size", "100", "--latent-dim", "4",
        "--out", str(folder / "out"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    return folder / "out"


def _rendered(page):
    """What Chromium shows of the page: each image's natural size, each table's rows."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "the report test needs Chromium: `make test` installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(page.as_uri())
        images = browser.execute_script(
            "return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth,"
            " i.naturalHeight])"
        )
        tables = browser.execute_script(
            "return [...document.querySelectorAll('table')].map(t => t.rows.length)"
        )
        headings = browser.execute_script(
            "return [...document.querySelectorAll('h2')].map(h => h.textContent)"
        )
    finally:
        browser.quit()
    return images, tables, headings


def test_the_tutorial_writes_a_report_that_renders(run):
    page = run / run_dir.REPORT_DIR / run_dir.REPORT_PAGE
    assert page.exists()
    images, tables, headings = _rendered(page)
    alts = [alt for alt, *_ in images]
    assert alts == [
        "accuracy, NMI and ARI per round",
        "module001_vae loss per epoch",
        "module001_vae latent space per round",
        "module002_gmm confusion matrix",
        "module001_vae originals above reconstructions",
    ]
    for alt, complete, width, height in images:
        assert complete and width > 300 and height > 200, alt  # decoded, not a broken icon
    assert tables == [1 + 3, 1 + 2, 1 + 6]  # scores by round, placements, seconds by update
    assert "Where the modules ran" in headings
    for figure in ("scores_per_round", "loss_module001_vae", "latent_module001_vae"):
        assert (page.parent / f"{figure}.png").stat().st_size > 5_000  # the PNGs beside it


def test_a_report_of_a_run_still_running(run, tmp_path):
    """Midway: round 3's folders and history lines not there yet, no placements file."""
    running = tmp_path / "running"
    shutil.copytree(run, running, ignore=shutil.ignore_patterns("round_003", "report"))
    history = (running / "history.jsonl").read_text().splitlines()
    (running / "history.jsonl").write_text("\n".join(history[:4]) + "\n")
    (running / "placements.json").unlink()
    page = run_report.write(running)
    text = page.read_text()
    assert "2 rounds recorded so far" in text and "placements.json is not written yet" in text
    images, tables, _ = _rendered(page)
    assert len(images) == 5 and all(complete for _alt, complete, *_ in images)
    assert tables == [1 + 2, 1 + 4]


def test_report_of_a_folder_without_a_run(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "holds no serket-ray run" in capsys.readouterr().err


def test_classes_found_are_renumbered_as_the_true_classes_they_match():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    classes = np.array([5, 5, 3, 3, 7, 7, 9])
    assert list(run_report._matched(labels, classes)) == [0, 0, 1, 1, 2, 2, 3]
    assert list(run_report._matched(None, classes)) == list(classes)
