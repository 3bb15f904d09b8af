"""Text reports: one progress line per round and the summary table at the end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SCORES = ("acc", "nmi", "ari")


def _short(module: str) -> str:
    return module.split("_", 1)[-1]  # module001_vae -> vae


def round_line(round_: int, rounds: int, reports: Sequence[dict[str, Any]]) -> str:
    parts = [f"round {round_}/{rounds}"]
    for report in reports:
        parts.append(f"{_short(report['module'])} {report['wall_seconds']:.2f} s")
        parts += [f"{k} {report['metrics'][k]:.3f}" for k in SCORES if k in report["metrics"]]
    return "  ".join(parts)


def summary_table(reports: Sequence[dict[str, Any]]) -> str:
    """Per round: scores (from whichever module reports them) and seconds per module."""
    modules = list(dict.fromkeys(r["module"] for r in reports))
    rounds = sorted({r["round"] for r in reports})
    header = ["round", *SCORES, *(f"{_short(m)} s" for m in modules)]
    rows = []
    for round_ in rounds:
        in_round = {r["module"]: r for r in reports if r["round"] == round_}
        scores = next((r["metrics"] for r in in_round.values() if "acc" in r["metrics"]), {})
        rows.append(
            [str(round_)]
            + [f"{scores[k]:.3f}" if k in scores else "-" for k in SCORES]
            + [f"{in_round[m]['wall_seconds']:.2f}" if m in in_round else "-" for m in modules]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
