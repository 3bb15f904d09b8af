"""How the driver shows a run: a live bar in a terminal, sparse lines in a log, or nothing.

In a terminal a single tqdm bar shows the update running now (round, module, its step's
progress, the last scores) and gives way to one line when the update ends. Anywhere else
(a pipe, a file, `ray job submit`, CI) nothing is redrawn: one line per module update,
and for an update that runs long, a line at each tenth of its progress at most.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from runtime.errors import SerketError
from runtime.progress import Step

MODES = ("auto", "live", "log", "off")
LONG_UPDATE_S = 10.0  # in a log, an update's progress lines start after this long


def short_name(module: str) -> str:
    return module.split("_", 1)[-1]  # module001_vae -> vae


def number(value: float) -> str:
    """A metric as a person reads it: 50, 0.868, 109.1."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def metrics_text(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{name} {number(value)}" for name, value in metrics.items())


def round_label(round_: int, rounds: int | None, word: str = "round") -> str:
    return f"{word} {round_}" if rounds is None else f"{word} {round_}/{rounds}"


def update_line(report: Mapping[str, Any], rounds: int | None = None) -> str:
    """One module update in one line: round (a pass, in recognition), module, seconds and
    every metric."""
    recognition = report.get("mode") == "recognize"
    count = round_label(report["round"], None if recognition else rounds,
                        "pass" if recognition else "round")  # fmt: skip
    metrics = metrics_text(report["metrics"])
    seconds = report.get("wall_seconds", report["seconds"])
    return f"{count}  {short_name(report['module'])}  {seconds:.2f} s  {metrics}".rstrip()


class Display(Protocol):
    rounds: int | None  # rounds the caller plans to run, shown as "round r/N" when known

    def waiting(self, module: str, step: Step | None) -> None:
        """An update of `module` is running; `step` is its latest progress, if any."""

    def done(self, report: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


class SilentDisplay:
    """Shows nothing (`display="off"`, the command line's --quiet)."""

    rounds: int | None = None

    def waiting(self, module: str, step: Step | None) -> None:
        pass

    def done(self, report: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class LogDisplay:
    """Lines only, never a carriage return: for pipes, files and job logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.rounds: int | None = None
        self._stream = stream
        self._tenths: dict[tuple[str, int, str], int] = {}  # last tenth printed, per step

    def waiting(self, module: str, step: Step | None) -> None:
        if step is None or step.total <= 0 or step.seconds < LONG_UPDATE_S:
            return
        tenth = 10 * step.done // step.total
        key = (step.module, step.round, step.description)
        if tenth in (0, 10) or self._tenths.get(key, 0) >= tenth:
            return  # the update's own line says when it is all done
        self._tenths[key] = tenth
        self._print(
            f"  {round_label(step.round, self.rounds)}  {short_name(step.module)}  "
            f"{step.description} {step.done}/{step.total} ({10 * tenth} %)  {step.seconds:.0f} s"
        )

    def done(self, report: Mapping[str, Any]) -> None:
        self._print(update_line(report, self.rounds))

    def close(self) -> None:
        pass

    def _print(self, line: str) -> None:
        print(line, file=self._stream or sys.stdout, flush=True)


class LiveDisplay:
    """One bar, redrawn in place while an update runs; a line replaces it at its end."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.rounds: int | None = None
        self._stream = stream or sys.stdout
        self._bar: tqdm | None = None
        self._key: tuple[Any, ...] | None = None
        self._scores = ""  # the last update's metrics, shown beside the bar
        self._rounds_done: dict[str, int] = {}  # per module, as its updates end

    def waiting(self, module: str, step: Step | None) -> None:
        key = (module, None) if step is None else (module, step.round, step.description)
        bar = self._bar if key == self._key and self._bar is not None else self._open(key, step)
        if step is not None:
            bar.n = step.done
        bar.refresh()

    def _open(self, key: tuple[Any, ...], step: Step | None) -> tqdm:
        """A new bar for another update or step (the one before it is cleared). Without
        progress reports (a module that sends none) it shows the time the update runs."""
        self._close_bar()
        self._key = key
        module = key[0]
        if step is None:
            done = self._rounds_done.get(module)
            where = "" if done is None else f"{round_label(done + 1, self.rounds)} "
            self._bar = tqdm(desc=f"{where}{short_name(module)}", file=self._stream,
                             leave=False, bar_format="{desc}  {elapsed}{postfix}",
                             postfix=self._scores or None)  # fmt: skip
        else:
            label = f"{round_label(step.round, self.rounds)} {short_name(step.module)}"
            self._bar = tqdm(total=step.total, desc=f"{label} {step.description}",
                             file=self._stream, leave=False, dynamic_ncols=True,
                             postfix=self._scores or None)  # fmt: skip
        return self._bar

    def done(self, report: Mapping[str, Any]) -> None:
        self._close_bar()
        if report.get("mode") != "recognize":
            self._rounds_done[report["module"]] = report["round"]
        self._scores = metrics_text(report["metrics"])
        print(update_line(report, self.rounds), file=self._stream, flush=True)

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._key = None


def make(mode: str, stream: TextIO | None = None) -> Display:
    """The display for `mode`: "auto" is live in a terminal and lines elsewhere."""
    if mode not in MODES:
        raise SerketError(f"session: display must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "live" if (stream or sys.stdout).isatty() else "log"
    if mode == "live":
        return LiveDisplay(stream)
    return LogDisplay(stream) if mode == "log" else SilentDisplay()
