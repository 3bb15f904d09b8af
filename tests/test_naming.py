"""The naming game: two agents on two simulated nodes exchange only signs, the MH rule
on a case computed by hand, the three modes, and a game interrupted (actor killed,
session resumed) that ends as an uninterrupted one does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import runtime as srk
from actors import naming
from actors.gmm import GMM
from actors.naming_player import acceptance
from actors.vae import VAE
from launch import bench_naming, graph, naming_game, run_dir, run_report
from runtime import codec
from runtime.checkpoint import CheckpointStore
from runtime.storage import Folder
from tests.probe_modules import DyingGMM

N, LATENT, ROUNDS, ITERATIONS = 100, 8, 2, 2


def test_the_acceptance_rule_on_a_case_computed_by_hand():
    # Listener densities p(z_n | class) for classes 0 and 1, per element.
    density = np.array([[0.2, 0.1], [0.2, 0.1], [0.1, 0.4], [0.3, 0.3]])
    own = np.array([0, 0, 0, 1])
    proposed = np.array([1, 1, 1, 0])
    uniform = np.array([0.4, 0.6, 0.99, 0.0])
    # Ratios p(z|proposed) / p(z|own): 0.5, 0.5, 4 and 1: accepted iff u < min(1, ratio).
    adopted = acceptance(np.log(density), own, proposed, uniform, "mh")
    assert adopted.tolist() == [True, False, True, True]
    assert acceptance(np.log(density), own, proposed, uniform, "all").all()
    assert not acceptance(np.log(density), own, proposed, uniform, "none").any()


def test_an_agent_new_to_the_game_takes_the_first_signs_it_hears():
    """Its classes are numbered its own way: the first listening adopts every sign (MH
    would reject another numbering), the next ones follow the MH rule."""
    from actors import mixture
    from actors.naming_player import Player

    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-4, 1, (50, 2)), rng.normal(4, 1, (50, 2))])
    params = mixture.MixtureParams(
        np.array([0.5, 0.5]), np.array([[-4.0, -4.0], [4.0, 4.0]]), np.stack([np.eye(2)] * 2)
    )
    swapped = 1 - Player.of(z, params, None, [0, 1]).signs  # another agent's numbering
    assert Player.of(z, params, None, [0, 1], named=True).listen(swapped, 0, "mh") < 5
    newcomer = Player.of(z, params, None, [0, 1], named=False)
    assert newcomer.listen(swapped, 0, "mh") == 100
    assert (newcomer.signs == swapped).all()
    # Its mixture now numbers the classes as the speaker does: the same signs fit.
    assert newcomer.listen(swapped, 1, "mh") == 100


def test_an_agent_tallies_its_listenings_per_iteration():
    """With all pairs an agent listens to each other agent in an iteration: its share
    adopted is over all the signs offered to it, its scores are after the last one."""
    from actors import mixture
    from actors.naming_player import Player

    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-4, 1, (50, 2)), rng.normal(4, 1, (50, 2))])
    labels = np.repeat([0, 1], 50)
    params = mixture.MixtureParams(
        np.array([0.5, 0.5]), np.array([[-4.0, -4.0], [4.0, 4.0]]), np.stack([np.eye(2)] * 2)
    )
    player = Player.of(z, params, labels, [0, 1])
    own, swapped = player.signs.copy(), 1 - player.signs
    for iteration, heard in [(0, own), (0, swapped), (1, own), (1, own)]:
        player.answer("listen", {"signs": heard, "iteration": iteration, "mode": "mh"})
    player.answer("kappa", {"kappa": np.array([0.25, 0.75])})
    table = player.per_iteration()
    # Iteration 0: its own signs, all adopted (ratio 1), then another numbering, nearly
    # all rejected: about half of the 200 offered. Iteration 1: its own twice.
    assert 0.5 <= table["acceptance"][0] < 0.53 and table["acceptance"][1] == 1.0
    assert table["ari"][1] == 1.0
    np.testing.assert_allclose(table["kappa"], [0.25, 0.75])
    assert (player.signs == own).all()
    assert Player.of(z, params, labels, [0, 1]).per_iteration() == {}  # it never listened


def test_the_half_view_blanks_the_left_half_of_the_turned_digits(digits):
    images = digits.images[:20]
    first, turned = naming_game.agent_views(images, 2)
    same, half = naming_game.agent_views(images, 2, view="half")
    assert (same == first).all() and (first == images).all()
    squares, whole = half.reshape(-1, 28, 28), turned.reshape(-1, 28, 28)
    assert (squares[:, :, :14] == 0).all() and whole[:, :, :14].any()
    assert (squares[:, :, 14:] == whole[:, :, 14:]).all()
    with pytest.raises(ValueError, match="naming game: view must be one of"):
        naming_game.agent_views(images, 2, view="noisy")


def test_the_split_view_gives_each_agent_its_own_strip(digits):
    images = digits.images[:20]
    left, right = (v.reshape(-1, 28, 28) for v in naming_game.agent_views(images, 2, "split"))
    squares = images.reshape(-1, 28, 28)
    assert (left[:, :, :14] == squares[:, :, :14]).all() and (left[:, :, 14:] == 0).all()
    assert (right[:, :, 14:] == squares[:, :, 14:]).all() and (right[:, :, :14] == 0).all()
    thirds = naming_game.agent_views(images, 3, "split")
    np.testing.assert_array_equal(sum(thirds), images)  # the strips tile every image
    left, right = (v.reshape(-1, 28, 28) for v in naming_game.agent_views(images, 2, "split", 3))
    assert (left[:, :, :17] == squares[:, :, :17]).all() and (left[:, :, 17:] == 0).all()
    assert (right[:, :, 11:] == squares[:, :, 11:]).all() and (right[:, :, :11] == 0).all()
    for view, overlap in [("turned", 3), ("split", -1)]:
        with pytest.raises(ValueError, match="overlap is a number of columns >= 0"):
            naming_game.agent_views(images, 2, view, overlap)


def test_pooled_posteriors_match_the_agents_numberings_and_add_their_evidence():
    """Two agents that number the classes differently, each unsure of a quarter of the
    elements, not the same quarter, and leaning wrong there: pooled, every one is right."""
    labels = np.repeat([0, 1, 2], 4)
    sure = np.eye(3)[labels] * 0.9 + 0.1 / 3
    unsure = np.full((12, 3), 1 / 3) + np.eye(3)[(labels + 1) % 3] * 0.05  # a wrong lean
    nth = np.arange(12) % 4  # each element's place within its class
    a = np.where((nth == 3)[:, None], unsure, sure)
    b = np.where((nth == 2)[:, None], unsure, sure)[:, [2, 0, 1]]  # its own numbering
    for alone in (a, b):
        assert adjusted_rand_score(labels, alone.argmax(axis=1)) < 0.6
    assert bench_naming.pooled_ari([a, b], labels) == 1.0
    assert bench_naming.pooled_ari([a, a], labels) == adjusted_rand_score(labels, a.argmax(1))


def test_speaker_listener_pairs():
    assert naming.speaker_listener_pairs(2, "ring") == [(0, 1), (1, 0)]
    assert naming.speaker_listener_pairs(3, "ring") == [(0, 1), (1, 2), (2, 0)]
    assert len(naming.speaker_listener_pairs(3, "all-pairs")) == 6


def test_gains_over_no_communication_are_taken_seed_by_seed():
    def runs(*aris):
        return [[{"ari_0": 0.0}, {"ari_0": ari}] for ari in aris]  # the final round counts

    results = {"mh": runs(0.70, 0.60, 0.80), "none": runs(0.65, 0.62, 0.70)}
    text = bench_naming.gains_over_none(results, agents=1)
    assert text == "mh, agent 0: ARI minus none +0.050 [-0.020 to +0.100], above on 2 of 3 seeds"
    assert bench_naming.gains_over_none({"mh": runs(0.7)}, agents=1) == ""


def test_bad_settings_name_the_game():
    with pytest.raises(srk.ModuleError, match="naming: mode must be one of"):
        naming.NamingGame(mode="maybe")
    with pytest.raises(srk.ModuleError, match="topology must be one of"):
        naming.NamingGame(topology="star")


@pytest.fixture(scope="module")
def two_nodes():
    """Agent 0's node (the head, with the driver) and agent 1's."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 3, "resources": {"agent0": 1}}
    )
    cluster.add_node(num_cpus=2, resources={"agent1": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def views(digits):
    images, labels = digits.images[:N], digits.labels[:N]
    return naming_game.agent_views(images, 2), labels


def play(root, views, mode="mh", rounds=ROUNDS, resume=False, dying=None):
    """Two agents, each on its own node; returns the session's status and the game."""
    images, labels = views
    srk.init(root, address="auto", resume=resume, max_restarts=1)
    gmms = []
    modules = []
    for i, view in enumerate(images):
        vae = VAE(LATENT, itr=1, batch_size=50, seed=i, num_threads=1, name=f"vae_{i}")
        if dying is not None and i == 1:
            gmm = DyingGMM(4, category=labels, seed=i, message="gaussian", marker=dying,
                           name=f"gmm_{i}")  # fmt: skip
        else:
            gmm = GMM(4, category=labels, seed=i, message="gaussian", name=f"gmm_{i}")
        for module in (vae, gmm):
            module.place(resources={f"agent{i}": 0.01})
        vae.connect(srk.Observation(view))
        gmm.connect(vae)
        gmms.append(gmm)
        modules += [vae, gmm]
    game = naming.NamingGame(iterations=ITERATIONS, mode=mode)
    game.connect(*gmms)
    reports = naming_game.recipes.run_rounds([*modules, game], rounds)
    placements = srk.current().placements()
    status = srk.current().status()
    srk.shutdown()
    return reports, placements, status


@pytest.fixture(scope="module")
def reference(two_nodes, views, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root, play(root, views)


def test_two_agents_on_two_nodes_exchange_only_signs(reference):
    _root, (reports, placements, _status) = reference
    nodes = {p["module"]: p["node_id"] for p in placements}
    assert nodes["module000_vae_0"] == nodes["module001_gmm_0"]
    assert nodes["module003_vae_1"] == nodes["module004_gmm_1"]
    assert nodes["module000_vae_0"] != nodes["module003_vae_1"]
    games = [r for r in reports if r["module"] == "module006_naming"]
    assert len(games) == ROUNDS
    metrics = games[-1]["metrics"]
    # Per iteration: 2 speeches and 2 listenings (a sign array each), and both agents'
    # signs for kappa (the last iteration's are the game's). Nothing larger than N signs.
    sign_messages = ITERATIONS * (2 + 2 + 2)
    one_sign_array = 4 * N
    assert metrics["largest_peer_message_bytes"] < one_sign_array + 200
    assert metrics["largest_peer_message_bytes"] < N * LATENT * 4 / 2  # far below z
    assert sign_messages * one_sign_array < metrics["bytes_between_peers"]
    assert metrics["bytes_between_peers"] < sign_messages * (one_sign_array + 200)
    assert 0.0 < metrics["acceptance_0"] < 1.0 and 0.0 < metrics["acceptance_1"] < 1.0
    assert -1.0 <= metrics["kappa"] <= 1.0 and 0.0 <= metrics["ari_0"] <= 1.0


def test_each_agent_settles_on_its_adopted_signs(reference):
    root, _ = reference
    store = CheckpointStore(Folder(root / "checkpoints"))
    manifest = store.load()
    for i, (gmm, vae) in enumerate([("module001_gmm_0", "module000_vae_0"),
                                    ("module004_gmm_1", "module003_vae_1")]):  # fmt: skip
        adopted = np.loadtxt(root / gmm / "class_game.txt").astype(int)
        forward = codec.decode(store.read(manifest.modules["module006_naming"]["forward"]))
        assert (forward.payload[:, i].astype(int) == adopted).all()
        # The VAE's next prior: the class Gaussian of the sign the agent holds.
        means = np.load(root / gmm / "model.npz")["means"]
        prior = codec.decode(store.read(manifest.backward[vae])).payload
        np.testing.assert_allclose(prior[:, :LATENT], means[adopted], rtol=1e-5)
        assert prior.shape == (N, 2 * LATENT)
    game = root / "module006_naming"
    assert np.loadtxt(game / "acceptance.txt").shape == (ITERATIONS, 2)


def test_each_agent_writes_its_own_game_per_iteration(reference):
    root, _ = reference
    game = root / "module006_naming"
    for i, gmm in enumerate(["module001_gmm_0", "module004_gmm_1"]):
        for score in ("acceptance", "acc", "ari"):
            own = np.loadtxt(root / gmm / f"naming_{score}.txt")
            np.testing.assert_allclose(own, np.loadtxt(game / f"{score}.txt")[:, i])
        kappa = np.loadtxt(root / gmm / "naming_kappa.txt")
        np.testing.assert_allclose(kappa, np.loadtxt(game / "kappa.txt"))
        assert kappa.shape == (ITERATIONS,)


def test_the_report_shows_the_game_per_round_and_per_iteration(reference):
    root, _ = reference
    page = run_report.write(root)
    text = page.read_text()
    assert "module006_naming: naming game" in text
    table = text[text.index("module006_naming: naming game") :].split("</table>")[0]
    assert "<th>kappa</th><th>acceptance_0</th>" in table
    assert table.count("<tr>") == 1 + ROUNDS  # a row per round
    for figure in ("naming_module006_naming", "naming_module006_naming_iterations"):
        assert (page.parent / f"{figure}.png").stat().st_size > 5_000
    run_dir.remove_report(root)
    assert not (root / run_dir.REPORT_DIR).exists()  # its figures are the report's own


@pytest.mark.parametrize("mode", ["none", "all"])
def test_the_comparison_modes(two_nodes, views, tmp_path, mode):
    reports, _, _ = play(tmp_path, views, mode=mode, rounds=1)
    metrics = reports[-1]["metrics"]
    if mode == "none":
        assert metrics["acceptance_0"] == metrics["acceptance_1"] == 0.0
        # Nothing said: only each agent's signs, once, for kappa.
        assert metrics["bytes_between_peers"] < 2 * (4 * N + 200)
        for gmm in ("module001_gmm_0", "module004_gmm_1"):
            own = np.loadtxt(tmp_path / gmm / "class_learn.txt")
            assert (np.loadtxt(tmp_path / gmm / "class_game.txt") == own).all()
    else:
        assert metrics["acceptance_0"] == metrics["acceptance_1"] == 1.0
    figures = {p.name for p in run_report.write(tmp_path).parent.glob("naming_*.png")}
    played = {"none": set(), "all": {"naming_module006_naming_iterations.png"}}[mode]
    assert figures == {"naming_module006_naming.png", *played}  # no game, no iterations


def test_a_listener_killed_mid_game_is_restarted_and_ends_as_uninterrupted(
    reference, views, tmp_path
):
    root, _ = reference
    _, _, status = play(tmp_path, views, dying=str(tmp_path / "died"))
    assert (tmp_path / "died").exists() and status["restarts"] == 1
    for gmm in ("module001_gmm_0", "module004_gmm_1"):
        expected = np.loadtxt(root / gmm / "class_game.txt")
        assert (np.loadtxt(tmp_path / gmm / "class_game.txt") == expected).all()


def test_a_resumed_game_ends_as_uninterrupted(reference, views, tmp_path):
    root, (reports, _, _) = reference
    play(tmp_path, views, rounds=ROUNDS - 1)
    resumed, _, _ = play(tmp_path, views, rounds=ROUNDS, resume=True)
    assert [r["module"] for r in resumed][-1] == "module006_naming"
    assert len(resumed) == 5  # the last round's updates only
    assert resumed[-1]["metrics"]["kappa"] == reports[-1]["metrics"]["kappa"]
    for gmm in ("module001_gmm_0", "module004_gmm_1"):
        expected = np.loadtxt(root / gmm / "class_game.txt")
        assert (np.loadtxt(tmp_path / gmm / "class_game.txt") == expected).all()


AGENT_GRAPH = """
rounds: 1
observations:
  - name: obs
    data: {file: view.npy}
modules:
  - name: vae
    type: vae
    params: {latent_dim: 8, itr: 1, batch_size: 50, num_threads: 1, seed: SEED}
    connect: [obs]
    place: {resources: {agentSEED: 0.01}}
  - name: gmm
    type: gmm
    params: {K: 4, category: {file: labels.txt}, message: gaussian, seed: SEED}
    connect: [vae]
    place: {resources: {agentSEED: 0.01}}
"""


def test_agents_from_their_own_graph_files_play_one_game(two_nodes, views, tmp_path):
    """Each agent described in a graph file of its own; the game joins them in Python."""
    images, labels = views
    agents = []
    for i, view in enumerate(images):
        folder = tmp_path / f"agent{i}"
        folder.mkdir()
        np.save(folder / "view.npy", view)
        np.savetxt(folder / "labels.txt", labels, fmt="%d")
        (folder / "agent.yaml").write_text(AGENT_GRAPH.replace("SEED", str(i)))
        agents.append(graph.load(folder / "agent.yaml"))
    srk.init(tmp_path / "run", address="auto")
    try:
        built = [graph.build(agent)[1] for agent in agents]
        game = naming.NamingGame(iterations=ITERATIONS)
        game.connect(*(modules["gmm"] for modules in built))
        order = [modules[name] for modules in built for name in ("vae", "gmm")]
        reports = naming_game.recipes.run_rounds([*order, game], 1)
        nodes = {p["module"]: p["node_id"] for p in srk.current().placements()}
    finally:
        srk.shutdown()
    vae_0, vae_1 = (modules["vae"].full_name for modules in built)
    assert nodes[vae_0] != nodes[vae_1]
    assert reports[-1]["module"] == game.full_name
    assert reports[-1]["metrics"]["acceptance_0"] > 0.0
