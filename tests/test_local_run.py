"""The one-process baseline of the speed benchmark runs the same model in a child process."""

from launch import data, local_run, recipes


def test_fresh_process_run_equals_the_run_in_this_process():
    settings = recipes.TutorialSettings(rounds=2, epochs=2, seed=3)
    digits, _ = data.tutorial_digits()
    here = local_run.run_vae_gmm(digits.images, digits.labels, settings)

    child = local_run.run_in_fresh_process(settings)

    assert child["scores"]["acc"] == here.scores[-1]["acc"]
    assert child["scores"]["nmi"] == here.scores[-1]["nmi"]
    assert [len(child["seconds"][name]) for name in ("vae", "gmm")] == [2, 2]
    assert child["whole"] >= sum(child["seconds"]["vae"]) + sum(child["seconds"]["gmm"])
