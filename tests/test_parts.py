"""Messages in parts, shard ranges, shard result files and scores from summed tables:
the pieces of sharding that need no Ray."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from runtime import data_files, output, parts, shard_files
from runtime.metrics import (
    classification_scores,
    contingency_table,
    matched_accuracy,
    scores_from_table,
)


@pytest.mark.parametrize(("total", "count"), [(10, 3), (7, 7), (1000, 4), (5, 1)])
def test_shard_ranges_cover_every_row_once_in_order(total, count):
    ranges = parts.ranges(total, count)
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    assert ranges == [(int(r[0]), int(r[-1]) + 1) for r in np.array_split(np.arange(total), count)]


def test_rows_are_read_across_parts_of_both_kinds(tmp_path):
    data = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.save(tmp_path / "a.npy", data[:7])
    messages = {"m": data[7:20]}
    message_parts = [
        {"start": 0, "stop": 7, "npy": str(tmp_path / "a.npy")},
        {"start": 7, "stop": 20, "ref": "m"},
    ]
    rows = parts.read_rows(message_parts, 5, 12, lambda part: messages[part["ref"]])
    np.testing.assert_array_equal(rows, data[5:12])
    decoded = parts.read_rows(message_parts, 8, 12, lambda part: messages[part["ref"]])
    assert decoded.dtype == np.float64 and decoded.base is not None  # a view, its dtype
    from_file = parts.read_rows(message_parts, 1, 3, lambda part: messages[part["ref"]])
    assert from_file.dtype == np.float32  # data files are read as the modules take them
    with pytest.raises(ValueError, match=r"hold 13 of rows 7\.\.21"):
        parts.read_rows(message_parts, 7, 21, lambda part: messages[part["ref"]])


def test_shard_result_parts_read_back_as_one_array(tmp_path):
    whole = np.arange(12).reshape(6, 2)
    for index, rows in enumerate(np.array_split(whole, 3)):
        np.save(tmp_path / shard_files.part_name("class_learn.txt", index), rows)
    np.testing.assert_array_equal(shard_files.read_parts(tmp_path, "class_learn"), whole)
    (tmp_path / shard_files.part_name("class_learn.txt", 1)).unlink()
    with pytest.raises(FileNotFoundError, match=r"not 0\.\.1"):
        shard_files.read_parts(tmp_path, "class_learn")


def test_scores_from_a_summed_table_equal_those_from_the_labels():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 500)
    found = (true + (rng.random(500) < 0.3) * rng.integers(1, 6, 500)) % 6
    halves = [slice(0, 200), slice(200, 500)]
    table = sum(contingency_table(true[h], found[h], (4, 6)) for h in halves)
    scores = scores_from_table(table)
    assert scores["acc"] == pytest.approx(matched_accuracy(true, found))
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(true, found))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(true, found))
    assert scores == pytest.approx(classification_scores(true, found))


def test_file_inspection_finds_the_first_bad_row_and_hashes_the_values(tmp_path):
    clean = np.ones((70_000, 3), np.float32)
    np.save(tmp_path / "clean.npy", clean)
    first = data_files.inspect(str(tmp_path / "clean.npy"), 2)
    assert first["rows"] == 70_000 and first["row_shape"] == [3]
    clean[66_000, 1] = np.inf  # in the second block scanned
    np.save(tmp_path / "bad.npy", clean)
    assert data_files.inspect(str(tmp_path / "bad.npy"), 2)["problem"].endswith("row 66000")
    clean[66_000, 1] = 2.0
    np.save(tmp_path / "other.npy", clean)
    assert data_files.inspect(str(tmp_path / "other.npy"), 2)["digest"] != first["digest"]


def test_label_rows_are_read_from_files_by_range(tmp_path):
    labels = np.arange(25)
    for index, rows in enumerate(np.array_split(labels, 4)):
        np.save(tmp_path / f"labels-{index:05d}.npy", rows)
    pattern = str(tmp_path / "labels-*.npy")
    np.testing.assert_array_equal(data_files.rows(pattern, 3, 19), labels[3:19])
    assert data_files.is_shard_files(pattern) and data_files.is_shard_files(str(tmp_path))
    assert not data_files.is_shard_files(str(tmp_path / "labels-00000.npy"))


def test_graph_files_take_shards_and_shard_files(tmp_path):
    from launch import graph

    path = tmp_path / "model.yaml"
    path.write_text(
        "observations:\n  - {name: obs, data: {shards: digits/digits-*.npy}}\n"
        "modules:\n"
        "  - {name: gmm, type: gmm, params: {K: 3, category: {shards: digits/labels-*.npy}},"
        " connect: [obs], shards: 2}\n"
    )
    model = graph.load(path)
    assert model.observations["obs"] == str(tmp_path / "digits" / "digits-*.npy")
    assert model.modules[0].params["shards"] == 2
    assert model.modules[0].params["category"] == str(tmp_path / "digits" / "labels-*.npy")
    gmm = "type: gmm, params: {K: 3, category: {shards: digits/labels-*.npy}}"
    path.write_text(path.read_text().replace(gmm, "type: vae, params: {latent_dim: 2}"))
    assert graph.load(path).modules[0].params["shards"] == 2  # the data-parallel VAE
    path.write_text(path.read_text().replace("type: vae", "class: tests.probe_modules:Whole"))
    with pytest.raises(graph.GraphError, match="Whole does not run sharded"):
        graph.load(path)


def test_results_read_back_however_they_were_written(tmp_path):
    small, large = np.arange(6).reshape(3, 2), np.arange(10)
    np.savetxt(tmp_path / "z_learn.txt", small)
    np.save(tmp_path / "class_learn.npy", large)
    for index, rows in enumerate(np.array_split(large, 2)):
        np.save(tmp_path / shard_files.part_name("Pdz_learn.txt", index), rows)
    np.testing.assert_array_equal(shard_files.read_result(tmp_path, "z_learn"), small)
    np.testing.assert_array_equal(shard_files.read_result(tmp_path, "class_learn"), large)
    np.testing.assert_array_equal(shard_files.read_result(tmp_path, "Pdz_learn"), large)
    assert shard_files.read_result(tmp_path, "mu_learn") is None
    assert not shard_files.has_result(tmp_path, "mu_learn")
    assert output.row_file("z_learn.txt", output.TEXT_ROWS) == "z_learn.txt"
    assert output.row_file("z_learn.txt", output.TEXT_ROWS + 1) == "z_learn.npy"
