"""Graph files: validation before any actor starts, and a small graph run through Ray."""

from pathlib import Path

import numpy as np
import pytest

from actors import naming
from launch import cli, data, graph

GRAPHS = Path(graph.__file__).parent / "graphs"
SHIPPED = sorted(set(GRAPHS.glob("*.yaml")) - {GRAPHS / "naming_game.yaml"})

GOOD = """
rounds: 2
observations:
  - name: obs
    data: {file: data.npy}
modules:
  - name: vae
    type: vae
    params: {latent_dim: 4, itr: 2, batch_size: 100}
    connect: [obs]
  - name: gmm
    type: gmm
    params: {K: 10, category: {file: labels.txt}}
    connect: [vae]
  - name: mm
    type: mm
    connect: [gmm]
recognize:
  data: {obs: {file: data.npy}}
  category: {gmm: {file: labels.txt}}
  passes: 2
"""


@pytest.fixture
def folder(tmp_path, digits):
    np.save(tmp_path / "data.npy", digits.images)
    np.savetxt(tmp_path / "labels.txt", digits.labels, fmt="%d")
    return tmp_path


def _write(folder, text):
    path = folder / "graph.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_graph_files_are_valid(path):
    model = graph.load(path)
    assert model.rounds == 5 and model.order[:2] == ["vae", "gmm"]
    assert model.observations["obs"].shape == (3000, 784)
    assert model.recognize_data["obs"].shape == (2000, 784)


def test_the_shipped_naming_game_graph_joins_two_views_of_the_digits():
    model = graph.load(GRAPHS / "naming_game.yaml")
    views = model.observations
    np.testing.assert_array_equal(views["view_b"], data.rotated(views["view_a"], 45.0))
    game = model.modules[-1]
    assert game.cls is naming.NamingGame and game.connect == ["gmm_a", "gmm_b"]
    assert model.order == ["vae_a", "gmm_a", "vae_b", "gmm_b", "game"]


def test_an_embedded_ray_has_a_cpu_for_every_module_actor(folder, monkeypatch):
    model = graph.load(
        _write(folder, GOOD.replace("    connect: [vae]", "    connect: [vae]\n    shards: 2"))
    )
    monkeypatch.setattr(graph.os, "cpu_count", lambda: 1)
    assert graph.embedded_cpus(model) == 4  # vae, two gmm shards, mm
    monkeypatch.setattr(graph.os, "cpu_count", lambda: 16)
    assert graph.embedded_cpus(model) == 16


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("type: mm", "type: hmm"), "module 'mm'.type: unknown module type 'hmm'"),
        (("K: 10", "Kk: 10"), "module 'gmm'.params.Kk: unknown parameter of GMM"),
        (("connect: [gmm]", "connect: [lda]"), "module 'mm'.connect: connects to 'lda'"),
        (("- name: mm", "- name: vae"), r"modules\[2\].name: duplicate name 'vae'"),
        (("{file: data.npy}\nmodules", "{file: nothere.npy}\nmodules"),
         r"observations\[0\].data: .*nothere.npy: file not found"),
        (("{file: labels.txt}}\n    connect", "{file: bad.txt}}\n    connect"),
         "module 'gmm'.params.category: .*bad.txt: cannot be read as a numeric matrix"),
        (("rounds: 2", "rounds: 0"), "rounds: must be a positive integer"),
        (("    connect: [vae]", "    connect: [vae]\n    colour: red"),
         r"modules\[1\]: unknown field 'colour'"),
        (("type: vae", "class: nowhere.mod:Thing"), "cannot import the module class"),
        (("latent_dim: 4, ", ""), "module 'vae'.params: VAE needs parameter 'latent_dim'"),
        (("{file: data.npy}\nmodules", "{builtin: tutorial_labels_at45}\nmodules"),
         r"observations\[0\].data: tutorial_labels_at45: unknown embedded data"),
    ],
)  # fmt: skip
def test_invalid_graph_names_file_module_and_field(folder, change, message):
    (folder / "bad.txt").write_text("1 x\n")
    path = _write(folder, GOOD.replace(*change))
    with pytest.raises(graph.GraphError, match=message) as raised:
        graph.load(path)
    assert str(raised.value).startswith(str(path))


def test_unreadable_graph_file_and_bad_yaml(folder):
    with pytest.raises(graph.GraphError, match=r"nothing\.yaml: cannot be read"):
        graph.load(folder / "nothing.yaml")
    with pytest.raises(graph.GraphError, match="is not valid YAML"):
        graph.load(_write(folder, "modules: [a, b\n"))


@pytest.mark.usefixtures("local_ray")
def test_graph_runs_learns_and_recognises(folder, capsys):
    out = folder / "out"
    assert cli.main(["run", str(_write(folder, GOOD)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "round 2/2" in printed and "recognition of novel data" in printed
    assert (out / "module003_mm" / "trans_prob_learn.txt").exists()
    assert np.loadtxt(out / "module003_mm" / "trans_prob_learn.txt").shape == (10, 10)
    assert np.loadtxt(out / "module002_gmm" / "class_recog.txt").shape == (200,)
    assert len((out / "history.jsonl").read_text().splitlines()) == 6


@pytest.mark.usefixtures("local_ray")
def test_inputs_that_do_not_fit_fail_naming_the_module(folder, capsys):
    # Caught at connect time, before any update: one weight for two inputs.
    text = GOOD.replace("type: mm\n    connect: [gmm]", "type: mlda\n    params: {K: 3, "
                        "weights: [1]}\n    connect: [gmm, obs]")  # fmt: skip
    assert cli.main(["run", str(_write(folder, text)), "--out", str(folder / "a")]) == 2
    error = capsys.readouterr().err
    assert "graph.yaml: module 'mm': has 1 weights for 2 connected inputs" in error
    # Caught at the first message: latent variables are not class probabilities.
    text = GOOD.replace("connect: [gmm]", "connect: [vae]")
    assert cli.main(["run", str(_write(folder, text)), "--out", str(folder / "b")]) == 2
    error = capsys.readouterr().err
    assert "module003_mm: update 1 failed" in error and "class probabilities" in error
