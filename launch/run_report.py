"""`serket-ray report RUN_DIR`: one HTML page about a run, made from its files alone.

It reads what a run writes (history.jsonl, placements.json, run.json, the modules' round
folders), so it works on a finished run and on one still running, whatever model the
graph held: a module that writes z_learn.txt gets a latent-space plot, one that writes
class_learn.txt (an MLDA's categories_learn.txt) colours it, loss.txt gives a loss
curve, x_hat_learn.npy reconstructions; a naming game gets its agents' kappa,
acceptance and ARI per round and per MH iteration. The page embeds its figures (it can
be mailed or archived alone); the same PNGs lie beside it, for slides and papers.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster import contingency_matrix

from actors import images
from launch import data, naming_game, report_figures, run_dir
from launch.report import SCORES
from runtime import data_files, shard_files
from runtime.errors import DataError

LATENT_ROUNDS = 4  # latent plots for at most this many rounds: the first, the last, between
DIGITS_SHOWN = 20

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
.note { color: #666; }
"""


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _rounds_kept(folder: Path, file: str) -> list[int]:
    """Round numbers whose folder under `folder` holds `file`."""
    return sorted(int(p.parent.name.removeprefix("round_")) for p in folder.glob(f"round_*/{file}"))


def _rounds_with(folder: Path, stem: str) -> list[int]:
    """Round numbers whose folder holds the element-wise result `stem`, however written
    (text, .npy, a sharded module's parts)."""
    rounds = (int(p.name.removeprefix("round_")) for p in folder.glob("round_*") if p.is_dir())
    return sorted(r for r in rounds if shard_files.has_result(folder / f"round_{r:03d}", stem))


def _result(folder: Path, stem: str) -> np.ndarray:
    found = shard_files.read_result(folder, stem)
    assert found is not None  # asked only where `_rounds_with` or `has_result` found it
    return found


def _evenly(rounds: Sequence[int], most: int) -> list[int]:
    if len(rounds) <= most:
        return list(rounds)
    picks = np.linspace(0, len(rounds) - 1, most).round().astype(int)
    return [rounds[i] for i in sorted(set(picks))]


def _module_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("module[0-9][0-9][0-9]_*") if p.is_dir())


class Page:
    """The HTML being written, and the figures beside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, path: Path, alt: str) -> None:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        self.parts.append(f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">')

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def html(self, title: str) -> str:
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{''.join(self.parts)}</body></html>\n"
        )


def _labels(settings: dict[str, Any], labels: str | np.ndarray | None) -> np.ndarray | None:
    """True classes: those given (an array or a file), the run's --labels, or the
    embedded digits' own."""
    if isinstance(labels, np.ndarray):
        return labels.astype(np.int64)
    path = labels or settings.get("labels")
    if path and data_files.is_shard_files(path):
        return None  # a run at scale: its pages show its scores, not its elements
    if path:
        return data.load_vector(path).astype(np.int64)
    if settings and settings.get("data") is None:  # a tutorial run on the embedded digits
        return data.tutorial_digits()[0].labels
    return None


def _inputs(settings: dict[str, Any], source: str | np.ndarray | None) -> np.ndarray | None:
    """The run's data: those given (an array or a file), the run's --data, or the
    embedded digits; None if unknown."""
    if isinstance(source, np.ndarray):
        return source
    path = source or settings.get("data")
    if path and data_files.is_shard_files(path):
        return None
    if path:
        return data.load_matrix(path)
    return data.tutorial_digits()[0].images if settings else None


def _matched(labels: np.ndarray | None, classes: np.ndarray) -> np.ndarray:
    """Classes found, renumbered as the true classes they are matched to (Hungarian, as
    `acc` scores; true classes as indices of np.unique(labels)); classes left unmatched
    get numbers after the true ones. Without labels for them, the classes as they are."""
    if labels is None or len(labels) != len(classes):
        return classes
    found, index = np.unique(classes, return_inverse=True)
    counts = contingency_matrix(labels, classes)  # rows: np.unique(labels), columns: found
    rows, columns = linear_sum_assignment(counts, maximize=True)
    renumbered = np.full(len(found), -1)
    renumbered[columns] = rows
    unmatched = renumbered < 0
    renumbered[unmatched] = counts.shape[0] + np.arange(unmatched.sum())
    return renumbered[index]


def _scores_section(page: Page, history: list[dict[str, Any]]) -> None:
    learned = [r for r in history if r.get("mode", "learn") == "learn"]
    scored = {r["module"]: {} for r in learned if "acc" in r["metrics"]}
    for record in learned:
        if record["module"] in scored:
            for name in SCORES:
                scored[record["module"]].setdefault(name, []).append(record["metrics"][name])
    page.heading("Scores per round")
    if not scored:
        page.note("No module reported accuracy (no true labels were given to the run).")
        return
    rows = [
        [r["round"], r["module"], *(f"{r['metrics'][k]:.3f}" for k in SCORES)]
        for r in learned
        if r["module"] in scored
    ]
    page.table(["round", "module", *SCORES], rows)
    path = report_figures.scores_per_round(scored, page.folder / f"{run_dir.REPORT_FIGURES[0]}.png")
    page.figure(path, "accuracy, NMI and ARI per round")


def _class_stem(folder: Path) -> str:
    """The classes' file stem, by Serket's names: an MLDA's categories, a GMM's class."""
    return "categories_learn" if _rounds_with(folder, "categories_learn") else "class_learn"


def _loss_section(page: Page, modules: list[Path]) -> None:
    for folder in modules:
        rounds = _rounds_kept(folder, "loss.txt")
        if rounds:
            page.heading(f"{folder.name}: loss")
            losses = {r: np.loadtxt(folder / f"round_{r:03d}" / "loss.txt", ndmin=1)
                      for r in rounds}  # fmt: skip
            path = report_figures.loss_per_epoch(
                losses, folder.name, page.folder / f"loss_{folder.name}.png"
            )
            page.figure(path, f"{folder.name} loss per epoch")


def _latent_section(page: Page, modules: list[Path], labels: np.ndarray | None) -> None:
    classifiers = [m for m in modules if _rounds_with(m, _class_stem(m))]
    for folder in modules:
        rounds = _evenly(_rounds_with(folder, "z_learn"), LATENT_ROUNDS)
        if not rounds:
            continue
        page.heading(f"{folder.name}: latent space by PCA")
        latents = {r: _result(folder / f"round_{r:03d}", "z_learn") for r in rounds}
        colourings: dict[str, dict[int, np.ndarray]] = {}
        if labels is not None and len(labels) == len(latents[rounds[0]]):
            true = np.unique(labels, return_inverse=True)[1]  # as matched classes count
            colourings["true class"] = dict.fromkeys(rounds, true)
        for classifier in classifiers:
            colourings[f"{classifier.name} class"] = {
                r: _matched(labels, _result(path, _class_stem(classifier)).astype(int))
                for r in rounds
                if shard_files.has_result(
                    path := classifier / f"round_{r:03d}", _class_stem(classifier)
                )
            }
        path = report_figures.latents_by_round(
            latents, colourings, page.folder / f"latent_{folder.name}.png"
        )
        page.figure(path, f"{folder.name} latent space per round")


def _confusion_section(page: Page, modules: list[Path], labels: np.ndarray | None) -> None:
    for folder in modules:
        if not shard_files.has_result(folder, _class_stem(folder)):
            continue
        page.heading(f"{folder.name}: confusion matrix (last round)")
        classes = _result(folder, _class_stem(folder)).astype(int)
        if labels is None or len(labels) != len(classes):
            page.note("No true labels for these elements: give them with --labels.")
            continue
        true = np.unique(labels, return_inverse=True)[1]  # matched classes count alike
        matched = _matched(labels, classes)
        size = max(matched.max(), true.max()) + 1
        counts = np.zeros((size, size), dtype=np.int64)
        np.add.at(counts, (true, matched), 1)
        path = report_figures.confusion(counts, page.folder / f"confusion_{folder.name}.png")
        page.figure(path, f"{folder.name} confusion matrix")


def _reconstruction_section(
    page: Page,
    modules: list[Path],
    inputs: np.ndarray | None,
    deskewed: bool,
    labels: np.ndarray | None,
) -> None:
    """deskewed: the VAE saw the inputs deskewed (the tutorial command's --deskew), so its
    reconstructions are shown below the deskewed digits."""
    for folder in modules:
        rebuilt_file = folder / "x_hat_learn.npy"
        if not rebuilt_file.exists():
            continue
        page.heading(f"{folder.name}: digits and their reconstructions (last round)")
        rebuilt = np.load(rebuilt_file, mmap_mode="r")
        side = round(np.sqrt(rebuilt.shape[1]))
        if (
            inputs is None
            or inputs.shape[1:] != rebuilt.shape[1:]
            or len(rebuilt) > len(inputs)
            or side * side != rebuilt.shape[1]
        ):
            page.note("The run's data are not square images known here: give them with --data.")
            continue
        if labels is not None and len(labels) == len(inputs):  # two of each class
            kept = labels[: len(rebuilt)]  # the VAE keeps the first reconstructions only
            shown = np.concatenate([np.flatnonzero(kept == c)[:2] for c in np.unique(kept)])
        else:
            shown = np.arange(min(DIGITS_SHOWN, len(rebuilt)))
        shown = shown[:DIGITS_SHOWN]
        originals = inputs[shown]
        if deskewed:  # only the digits shown
            originals = images.deskew(torch.from_numpy(originals)).numpy()
        path = report_figures.reconstructions(
            originals, np.asarray(rebuilt[shown]), page.folder / f"rebuilt_{folder.name}.png"
        )
        page.figure(path, f"{folder.name} originals above reconstructions")


def _naming_section(page: Page, history: list[dict[str, Any]], root: Path) -> None:
    """Per naming game (a module reporting kappa and acceptance_0): its figures per round,
    and per MH iteration of the last game kept."""
    learned = [r for r in history if r.get("mode", "learn") == "learn"]
    games = dict.fromkeys(
        r["module"] for r in learned if {"kappa", "acceptance_0"} <= r["metrics"].keys()
    )
    for game in games:
        records = [r for r in learned if r["module"] == game]
        per_round = [r["metrics"] for r in records]
        agents = sum(key.startswith("acceptance_") for key in per_round[-1])
        page.heading(f"{game}: naming game")
        columns = ["kappa", *(f"{s}_{i}" for s in ("acceptance", "ari") for i in range(agents))]
        page.table(
            ["round", *columns],
            [[r["round"], *(f"{r['metrics'].get(c, np.nan):.3f}" for c in columns)]
             for r in records],
        )  # fmt: skip
        path = naming_game.plot({game: per_round}, agents, page.folder / f"naming_{game}.png")
        page.figure(path, f"{game} per round")
        kept = _rounds_kept(root / game, "kappa.txt")
        last = root / game / f"round_{kept[-1]:03d}" if kept else None
        if last is None or (last / "kappa.txt").stat().st_size == 0:
            continue  # no game played ("none" mode) or its files not written yet
        per_iteration = _iterations(last, agents)
        title, file = f"{game}, round {kept[-1]}", page.folder / f"naming_{game}_iterations.png"
        path = naming_game.plot({title: per_iteration}, agents, file, "MH iteration")
        page.figure(path, f"{game} per MH iteration of round {kept[-1]}")


def _iterations(folder: Path, agents: int) -> list[dict[str, float]]:
    """A game's per-iteration files as one record per iteration, as the rounds' reports."""
    kappa = np.loadtxt(folder / "kappa.txt", ndmin=1)
    by_agent = {
        name: np.loadtxt(folder / f"{name}.txt", ndmin=2).reshape(len(kappa), agents)
        for name in ("acceptance", "ari")
    }
    return [
        {"kappa": float(k), **{f"{name}_{i}": float(values[t, i])
                               for name, values in by_agent.items() for i in range(agents)}}
        for t, k in enumerate(kappa)
    ]  # fmt: skip


def _runtime_section(page: Page, history: list[dict[str, Any]], placements: list[dict]) -> None:
    page.heading("Where the modules ran")
    if placements:
        page.table(
            ["module", "host", "node address", "process", "GPUs"],
            [[p["module"], p["hostname"], p["node_ip"], p["pid"],
              ", ".join(map(str, p["gpu_ids"])) or "none (CPU)"] for p in placements],
        )  # fmt: skip
    else:
        page.note("placements.json is not written yet.")
    page.heading("Seconds per update")
    page.table(
        ["round", "module", "mode", "seconds", "of which in the module"],
        [[r["round"], r["module"], r.get("mode", "learn"), f"{r['wall_seconds']:.2f}",
          f"{r['seconds']:.2f}"] for r in history],
    )  # fmt: skip


def write(
    root: Path, *, labels: str | np.ndarray | None = None, source: str | np.ndarray | None = None
) -> Path:
    """Write RUN_DIR/report/report.html (and its PNGs); returns the page's path.

    labels, source: the true classes and the data (arrays, or files), where the run's
    run.json does not name them (a graph file's run, a script's).
    """
    root = Path(root)
    modules = _module_dirs(root)
    history = _read_json_lines(root / "history.jsonl")
    if not modules and not history:
        raise DataError(str(root), "holds no serket-ray run (no history.jsonl, no module folders)")
    settings = _read_json(root / run_dir.RUN_FILE, {})
    true_labels = _labels(settings, labels)
    folder = root / run_dir.REPORT_DIR
    folder.mkdir(exist_ok=True)
    page = Page(folder)
    rounds = max((r["round"] for r in history if r.get("mode", "learn") == "learn"), default=0)
    page.note(f"{root.resolve()}: {len(modules)} modules, {rounds} rounds recorded so far.")
    _scores_section(page, history)
    _loss_section(page, modules)
    _latent_section(page, modules, true_labels)
    _confusion_section(page, modules, true_labels)
    inputs, deskewed = _inputs(settings, source), bool(settings.get("deskew"))
    _reconstruction_section(page, modules, inputs, deskewed, true_labels)
    _naming_section(page, history, root)
    _runtime_section(page, history, _read_json(root / "placements.json", []))
    temporary = folder / (run_dir.REPORT_PAGE + ".tmp")
    temporary.write_text(page.html(f"serket-ray run: {root.name}"))
    return temporary.replace(folder / run_dir.REPORT_PAGE)
