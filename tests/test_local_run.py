"""The one-process baseline of the speed benchmark runs the same model in a child process."""

import argparse

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


def test_benchmark_pairs_each_repeat_and_reverses_the_order(monkeypatch, capsys):
    """The arms are replaced by fakes whose times are known: the summary must pair each
    Ray run with the one-process run of its repeat, and run that one in the middle."""
    from launch import bench

    order: list[str] = []
    ray_wholes = iter([12.0, 13.0, 14.0])  # start-up 2 s: 10, 11, 12 s after it
    local_wholes = iter([10.0, 10.0, 10.0])
    beside_wholes = iter([10.5, 11.0, 10.2])

    def fake(arm: str, wholes, startup: float = 0.0):
        def timed(*_args, **_kwargs) -> bench.Timing:
            order.append(arm)
            seconds = {"vae": [1.0], "gmm": [0.1]}
            scores = {"acc": 0.9, "nmi": 0.8, "ari": 0.7}
            return bench.Timing(next(wholes), startup, 0.01, seconds, scores)

        return timed

    monkeypatch.setattr(bench, "time_ray", fake("ray", ray_wholes, startup=2.0))
    monkeypatch.setattr(bench, "time_in_process", fake("local", local_wholes))
    monkeypatch.setattr(bench, "time_beside_idle_ray", fake("beside", beside_wholes))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = argparse.Namespace(repeats=3, address=None)

    bench.run(recipes.TutorialSettings(), args, {})

    assert order == [
        *("ray", "local", "beside"),
        *("beside", "local", "ray"),
        *("ray", "local", "beside"),
    ]
    printed = capsys.readouterr().out
    assert "start-up excluded: +0.0% (best of 3)" in printed
    assert "+0.0%, +10.0%, +20.0%; median +10.0%" in printed
    assert "+5.0%, +10.0%, +2.0%; median +5.0%" in printed
