"""`serket-ray make-digits`: MNIST8M-style digits made shard by shard, labels kept."""

import json

import numpy as np
import pytest
import torch

from actors import images
from launch import cli, deformed_digits


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "set"
    assert cli.main(["make-digits", "--elements", "5300", "--shard-rows", "2000",
                     "--out", str(out), "--seed", "3"]) == 0  # fmt: skip
    return out


def test_shards_rows_and_labels(made):
    manifest = json.loads((made / "manifest.json").read_text())
    assert manifest["elements"] == 5300 and manifest["features"] == 784
    assert [(s["start"], s["rows"]) for s in manifest["shards"]] == [
        (0, 2000), (2000, 2000), (4000, 1300)
    ]  # fmt: skip
    source = deformed_digits.source_digits()
    labels = np.concatenate([np.load(made / s["labels"]) for s in manifest["shards"]])
    assert np.array_equal(labels, source.labels[np.arange(5300) % 5000])  # order kept
    assert list(labels[:10]) == list(range(10))  # the tutorial's class order
    for shard in manifest["shards"]:
        digits = np.load(made / shard["digits"], mmap_mode="r")
        assert digits.shape == (shard["rows"], 784) and digits.dtype == np.float32
        assert np.isfinite(digits).all() and digits.min() >= 0 and digits.max() <= 1.0 + 1e-6


def test_each_digit_is_a_deformation_of_its_source(made):
    source = deformed_digits.source_digits()
    digits = np.load(made / "digits-00001.npy")  # elements 2000-3999
    originals = source.images[2000:4000]
    assert not np.allclose(digits, originals, atol=0.05)  # really deformed

    # Each deformed digit is nearer (by correlation) its own source digit than the source
    # digit of the next element (another class), in most cases.
    def correlation(a, b):
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))

    own = correlation(digits, originals)
    other = correlation(digits, np.roll(originals, 1, axis=0))
    assert (own > other).mean() > 0.85  # 0.89 measured (shifts of 2 pixels lower both)
    assert np.median(own) > 2 * np.median(other)


def test_a_shard_is_remade_alone_to_the_same_values(made):
    """A shard depends only on the seed and its index: no process needs the whole set."""
    source = deformed_digits.source_digits()
    again, labels = deformed_digits.make_shard(
        source, 4000, 1300, 3, 2, deformed_digits.Deformation()
    )
    assert np.array_equal(again, np.load(made / "digits-00002.npy"))
    assert np.array_equal(labels, np.load(made / "labels-00002.npy"))
    other_seed, _ = deformed_digits.make_shard(
        source, 4000, 1300, 4, 2, deformed_digits.Deformation()
    )
    assert not np.allclose(other_seed, again)


def test_the_elastic_field_moves_ink_by_alpha(digits):
    x = torch.from_numpy(digits.images[:50])
    still = images.elastic_distortion(x, torch.Generator().manual_seed(0), alpha=0.0,
                                      rotation=0, scale=0, shift=0)  # fmt: skip
    assert torch.allclose(still, x, atol=1e-5)  # no field, no affine: the identity
    moved = images.elastic_distortion(x, torch.Generator().manual_seed(0), alpha=34.0,
                                      rotation=0, scale=0, shift=0)  # fmt: skip
    assert (moved - x).abs().mean() > 0.02


def test_a_folder_that_holds_a_set_is_refused(made, capsys):
    assert cli.main(["make-digits", "--elements", "10", "--out", str(made)]) == 2
    assert "holds a digit set already" in capsys.readouterr().err
    assert cli.main(["make-digits", "--elements", "0", "--out", str(made / "x")]) == 2
    assert "elements must be a positive integer" in capsys.readouterr().err
