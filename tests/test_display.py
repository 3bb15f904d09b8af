"""The driver's display: lines in a log, a bar redrawn in place in a terminal."""

import io

import pytest

from runtime import SerketError, display
from runtime.progress import Step

REPORT = {
    "module": "module002_gmm", "mode": "learn", "round": 2, "seconds": 0.5, "wall_seconds": 0.61,
    "metrics": {"acc": 0.8683, "nmi": 0.81, "iterations": 50.0, "loss": 109.12},
}  # fmt: skip


def _steps(seconds_per_epoch: float, epochs: int = 200):
    return [
        Step("module001_vae", 3, done, epochs, "epochs", done * seconds_per_epoch)
        for done in range(0, epochs + 1, 5)
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_update_line_names_round_module_seconds_and_metrics():
    assert (
        display.update_line(REPORT, rounds=5)
        == "round 2/5  gmm  0.61 s  acc 0.868  nmi 0.810  iterations 50  loss 109.1"
    )
    assert display.update_line({**REPORT, "mode": "recognize"}).startswith("pass 2  gmm")


def test_a_log_gets_a_line_per_tenth_of_a_long_update_and_no_redraws():
    stream = io.StringIO()
    log = display.LogDisplay(stream)
    log.rounds = 5
    for step in _steps(seconds_per_epoch=0.5):  # 100 s: long
        log.waiting("module001_vae", step)
        log.waiting("module001_vae", step)  # polled twice: still one line per tenth
    log.done({**REPORT, "module": "module001_vae", "round": 3})
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    progress = [line for line in lines if "%" in line]
    # Tenths 1-9 once each, those that start after LONG_UPDATE_S (epoch 20 = 10 s) only.
    assert [line.split("(")[1].split(")")[0] for line in progress] == [
        f"{10 * t} %" for t in range(1, 10)
    ]
    assert progress[0].strip().startswith("round 3/5  vae  epochs 20/200 (10 %)")
    assert lines[-1].startswith("round 3/5  vae  0.61 s")


def test_a_short_update_is_one_line_in_a_log():
    stream = io.StringIO()
    log = display.LogDisplay(stream)
    for step in _steps(seconds_per_epoch=0.01):  # 2 s in all
        log.waiting("module001_vae", step)
    log.done(REPORT)
    assert stream.getvalue().splitlines() == [
        "round 2  gmm  0.61 s  acc 0.868  nmi 0.810  iterations 50  loss 109.1"
    ]


def test_a_terminal_gets_one_bar_redrawn_then_the_line():
    terminal = Terminal()
    live = display.make("auto", terminal)
    assert isinstance(live, display.LiveDisplay)
    live.waiting("module002_gmm", None)  # no progress reported (yet): a bar all the same
    for step in _steps(seconds_per_epoch=0.01):
        live.waiting("module001_vae", step)
    live.done(REPORT)
    shown = terminal.getvalue()
    assert "\r" in shown and "round 3 vae epochs" in shown and "200/200" in shown
    assert shown.rstrip().endswith(
        "round 2  gmm  0.61 s  acc 0.868  nmi 0.810  iterations 50  loss 109.1"
    )


def test_display_modes():
    assert isinstance(display.make("auto", io.StringIO()), display.LogDisplay)
    assert isinstance(display.make("off"), display.SilentDisplay)
    with pytest.raises(SerketError, match="display must be one of auto, live, log, off"):
        display.make("loud")
