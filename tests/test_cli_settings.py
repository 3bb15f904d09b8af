"""Command-line model settings: what a flag selects, and how older runs are read back."""

import argparse
import json

import pytest

from launch import cli, recipes, run_dir


def test_gmm_flag_selects_the_algorithm_and_gibbs_is_the_default():
    parser = cli.build_parser()
    assert cli._settings(parser.parse_args(["tutorial"])).gmm == "gibbs"
    assert cli._settings(parser.parse_args(["tutorial", "--gmm", "em"])).gmm == "em"
    with pytest.raises(SystemExit):
        parser.parse_args(["tutorial", "--gmm", "variational"])


def test_deskewing_is_on_for_the_embedded_digits_and_off_for_user_data():
    parser = cli.build_parser()

    def deskew(*flags: str) -> bool:
        return cli._settings(parser.parse_args(["tutorial", *flags])).deskew

    assert deskew() is True
    assert deskew("--data", "table.npy") is False
    assert deskew("--data", "digits.npy", "--deskew") is True
    assert deskew("--no-deskew") is False
    assert cli._settings(parser.parse_args(["bench"])).deskew is True


def test_runs_recorded_before_the_flags_resume_as_they_ran():
    # run.json of an older version has no "gmm", "deskew", "kl_weight" or "jitter": those
    # runs used EM, raw pixels, alpha 1 and no jitter.
    recorded = argparse.Namespace(
        rounds=5, epochs=200, batch_size=500, latent_dim=18, classes=10, seed=0
    )
    settings = cli._settings(recorded)
    assert (settings.gmm, settings.deskew, settings.kl_weight, settings.jitter) == (
        "em",
        False,
        1.0,
        False,
    )


def test_kl_weight_flag_reaches_the_tutorial_vae():
    parser = cli.build_parser()
    settings = cli._settings(parser.parse_args(["tutorial"]))
    assert settings.kl_weight == 0.3
    assert recipes.tutorial_vae(settings).alpha == 0.3
    settings = cli._settings(parser.parse_args(["tutorial", "--kl-weight", "1"]))
    assert recipes.tutorial_vae(settings).alpha == 1.0


def test_gmm_threads_flag_reaches_the_tutorial_gmm_and_its_cpu_reservation():
    parser = cli.build_parser()
    default = recipes.tutorial_gmm(None, cli._settings(parser.parse_args(["tutorial"])))
    assert (default.num_threads, default.resources.num_cpus) == (1, 1)
    settings = cli._settings(parser.parse_args(["tutorial", "--gmm-threads", "4"]))
    four = recipes.tutorial_gmm(None, settings)
    assert (four.num_threads, four.resources.num_cpus) == (4, 4)
    recorded = argparse.Namespace(  # run.json of a version before the flag
        rounds=5, epochs=200, batch_size=500, latent_dim=18, classes=10, seed=0
    )
    assert cli._settings(recorded).gmm_threads == 1


def test_vae_threads_flag_reaches_the_tutorial_vae():
    parser = cli.build_parser()
    assert recipes.tutorial_vae(cli._settings(parser.parse_args(["tutorial"]))).num_threads is None
    settings = cli._settings(parser.parse_args(["bench", "--vae-threads", "1"]))
    assert recipes.tutorial_vae(settings).num_threads == 1
    recorded = argparse.Namespace(  # run.json of a version before the flag
        rounds=5, epochs=200, batch_size=500, latent_dim=18, classes=10, seed=0
    )
    assert cli._settings(recorded).vae_threads is None


def test_keep_rounds_is_recorded_and_read_back_on_resume(tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["tutorial", "--out", str(tmp_path), "--keep-rounds", "2"])
    cli._record(args, tmp_path)

    def resumed(*flags: str) -> argparse.Namespace:
        return cli._recorded(parser.parse_args(["tutorial", "--resume", str(tmp_path), *flags]))

    assert resumed().keep_rounds == 2
    assert resumed("--keep-rounds", "1").keep_rounds == 1  # given again: the new value
    recorded = json.loads((tmp_path / run_dir.RUN_FILE).read_text())
    del recorded["keep_rounds"]  # run.json of a version before the flag: every round kept
    (tmp_path / run_dir.RUN_FILE).write_text(json.dumps(recorded))
    assert resumed().keep_rounds is None


def test_a_naming_view_it_cannot_make_is_refused_before_ray_starts(tmp_path, capsys):
    out = tmp_path / "game"
    assert cli.main(["naming-game", "--overlap", "2", "--out", str(out)]) == 2
    assert "overlap is a number of columns >= 0 for the split view" in capsys.readouterr().err
    assert not out.exists()  # nothing started, nothing written
    parser = cli.build_parser()
    flags = ["bench-naming", "--view", "split", "--overlap", "3"]
    assert cli._game_settings(parser.parse_args(flags)).overlap == 3
