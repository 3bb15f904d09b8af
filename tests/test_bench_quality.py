"""The quality benchmark on a small subset: every configuration scored, files written."""

from __future__ import annotations

import json

from launch import bench_quality, data, recipes


def _subset(digits: data.Digits, n: int) -> data.Digits:
    return data.Digits(digits.images[:n], digits.labels[:n])


def test_quality_benchmark_scores_every_configuration(tmp_path, capsys):
    learned, heldout = data.tutorial_digits()
    settings = recipes.TutorialSettings(rounds=2, epochs=3, batch_size=100)
    bench_quality.run(
        settings, [0, 1], tmp_path, digits=(_subset(learned, 300), _subset(heldout, 200))
    )

    printed = capsys.readouterr().out
    for name in bench_quality.CONFIGURATIONS:
        assert name in printed
    saved = json.loads((tmp_path / "quality.json").read_text())
    assert saved["seeds"] == [0, 1]
    for seed_result in saved["results"]:
        assert set(seed_result) == set(bench_quality.CONFIGURATIONS)
        coupled = seed_result["coupled (tutorial)"]["per_round"]
        uncoupled = seed_result["uncoupled"]["per_round"]
        assert len(coupled) == len(uncoupled) == settings.rounds
        assert len(seed_result["coupled, other GMM"]["per_round"]) == settings.rounds
        assert len(seed_result["coupled, other prior"]["per_round"]) == settings.rounds
        assert len(seed_result["coupled, raw pixels"]["per_round"]) == settings.rounds
        assert len(seed_result["uncoupled, raw pixels"]["per_round"]) == settings.rounds
        # Round 1 is the same model either way: no class means have been sent yet.
        assert coupled[0] == uncoupled[0]
        for result in seed_result.values():
            assert 0.0 < result["final"]["acc"] <= 1.0
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_plot_labels_each_curve_with_its_configuration():
    def seed_result(offset: float) -> dict[str, dict]:
        rounds = [{"acc": 0.5 + offset}, {"acc": 0.75 + offset}]
        result = {name: {"per_round": rounds} for name in bench_quality.CONFIGURATIONS}
        result["PCA + GMM"] = {"final": {"acc": 0.25 + offset}}
        result["PCA + GMM, raw pixels"] = {"final": {"acc": 0.125 + offset}}
        return result

    panels, baselines = bench_quality.accuracy_panels([seed_result(0.0), seed_result(0.25)], "em")
    deskewed, raw = bench_quality.PANELS
    # Each panel's reference line is its own PCA + GMM: the median of the two seeds.
    assert baselines == {deskewed: {"PCA + GMM": 0.375}, raw: {"PCA + GMM, raw pixels": 0.25}}
    assert set(panels[deskewed]) == {
        "coupled (tutorial)",
        "coupled, gaussian prior",
        "coupled, em GMM",
        "uncoupled",
    }
    assert panels[raw]["coupled, raw pixels"] == [[0.5, 0.75], [0.75, 1.0]]
