"""A command-line run's folder: what marks it as holding a run, and replacing one."""

from __future__ import annotations

from pathlib import Path

from runtime import CheckpointError
from runtime.checkpoint import CheckpointStore
from runtime.output import remove_results

RUN_FILE = "run.json"  # what a run was started with, so that --resume can rebuild it
LATENT_PLOT = "latent_pca.png"
REPORT_DIR = "report"  # `serket-ray report`: its page, and its figures beside it
REPORT_PAGE = "report.html"
REPORT_FIGURES = ("scores_per_round", "loss_", "latent_", "confusion_", "rebuilt_", "naming_")


def replace_or_refuse(root: Path, checkpoint_dir: Path | str, *, overwrite: bool) -> None:
    """Before a new (not resumed) run writes anything under `root`.

    A folder that holds an earlier run would get its results overwritten one by one and
    its checkpoint dropped at the first update: hours of a cluster run lost to a missing
    --resume. So that is refused, unless `overwrite`: then the earlier run is deleted
    first, so that no file of it (a round the new run does not reach) is mistaken for
    the new run's. Only the files serket-ray writes are deleted, never anything else.
    """
    store = CheckpointStore(checkpoint_dir)
    if not ((root / RUN_FILE).exists() or store.holds_checkpoint()):
        return
    if not overwrite:
        raise CheckpointError(
            str(root),
            "holds an earlier run; continue it with --resume, write the new one elsewhere "
            "with --out, or replace it with --overwrite",
        )
    store.clear()
    remove_results(root)
    for name in (RUN_FILE, LATENT_PLOT):
        (root / name).unlink(missing_ok=True)
    remove_report(root)


def remove_report(root: Path) -> None:
    """Delete the report written in `root`: its page and figures, nothing else."""
    folder = root / REPORT_DIR
    for path in [folder / REPORT_PAGE, *folder.glob("*.png")]:
        if path.name == REPORT_PAGE or path.stem.startswith(REPORT_FIGURES):
            path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
