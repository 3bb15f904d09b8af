"""Text reports: the summary table at the end of a run and recognition's lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.display import short_name as _short

SCORES = ("acc", "nmi", "ari")


def summary_table(reports: Sequence[dict[str, Any]]) -> str:
    """Per round: the scores of every module that reports them, and seconds per module."""
    modules = list(dict.fromkeys(r["module"] for r in reports))
    scorers = [
        m for m in modules if any("acc" in r["metrics"] for r in reports if r["module"] == m)
    ]
    rounds = sorted({r["round"] for r in reports})
    prefix = (lambda m: f"{_short(m)} ") if len(scorers) > 1 else (lambda m: "")
    header = [
        "round",
        *(f"{prefix(m)}{k}" for m in scorers for k in SCORES),
        *(f"{_short(m)} s" for m in modules),
    ]
    rows = []
    for round_ in rounds:
        in_round = {r["module"]: r for r in reports if r["round"] == round_}
        rows.append(
            [str(round_)]
            + [
                f"{in_round[m]['metrics'][k]:.3f}" if m in in_round else "-"
                for m in scorers
                for k in SCORES
            ]
            + [f"{in_round[m]['wall_seconds']:.2f}" if m in in_round else "-" for m in modules]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def recognition_lines(reports: Sequence[dict[str, Any]]) -> list[str]:
    """One line per module recognition: its pass, seconds and scores."""
    return [
        "  ".join(
            [f"pass {r['round']}  {_short(r['module'])} {r['wall_seconds']:.2f} s"]
            + [f"{k} {r['metrics'][k]:.3f}" for k in SCORES if k in r["metrics"]]
        )
        for r in reports
    ]
