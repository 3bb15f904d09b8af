"""Result files per round: what `keep_rounds` keeps, and that the latest files survive."""

import numpy as np
import pytest

import runtime as srk
from runtime.output import ResultWriter


def _round_folders(root, module="module001_vae"):
    return sorted(p.name for p in (root / module).iterdir() if p.is_dir())


def _write_rounds(writer, rounds):
    for round_ in rounds:
        writer.write_round("module001_vae", round_, {"z_learn.npy": np.full(3, round_)})


def test_every_round_is_kept_by_default(tmp_path):
    _write_rounds(ResultWriter(tmp_path), range(1, 5))
    assert _round_folders(tmp_path) == [f"round_{r:03d}" for r in range(1, 5)]


def test_keep_rounds_keeps_the_first_and_the_last_n(tmp_path):
    writer = ResultWriter(tmp_path, keep_rounds=2)
    (tmp_path / "module001_vae").mkdir()
    (tmp_path / "module001_vae" / "notes").mkdir()  # not a round folder: left alone
    _write_rounds(writer, range(1, 6))
    assert _round_folders(tmp_path) == ["notes", "round_001", "round_004", "round_005"]
    assert np.load(tmp_path / "module001_vae" / "z_learn.npy").tolist() == [5, 5, 5]
    assert np.load(tmp_path / "module001_vae" / "round_001" / "z_learn.npy").tolist() == [1, 1, 1]


def test_a_resumed_run_with_fewer_rounds_kept_drops_the_older_ones(tmp_path):
    _write_rounds(ResultWriter(tmp_path), range(1, 6))
    _write_rounds(ResultWriter(tmp_path, keep_rounds=1), [6])
    assert _round_folders(tmp_path) == ["round_001", "round_006"]


def test_keep_rounds_past_round_999_compares_numbers_not_names(tmp_path):
    _write_rounds(ResultWriter(tmp_path, keep_rounds=1), [999, 1000])
    assert _round_folders(tmp_path) == ["round_1000"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_keep_rounds_is_refused_before_ray_starts(tmp_path, bad):
    with pytest.raises(srk.SerketError, match=r"session: keep_rounds must be .* got"):
        srk.Session(tmp_path, keep_rounds=bad)
