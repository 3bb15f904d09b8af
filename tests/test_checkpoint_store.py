"""The checkpoint store deletes only the files it wrote, whatever else shares its folder;
a data digest depends on the values alone."""

import numpy as np

from runtime.checkpoint import MANIFEST, CheckpointStore, Manifest, data_digest, file_name


def _manifest(round_: int) -> tuple[Manifest, dict[str, bytes]]:
    """A checkpoint named as the coordinator names it."""
    entry = {"config": "c", "rounds": round_}
    entry["state"] = file_name("module001_vae", round_, "state.npz")
    entry["forward"] = file_name("module001_vae", round_, "forward.msgpack")
    manifest = Manifest(modules={"module001_vae": entry})
    manifest.backward["module000_obs"] = file_name("module001_vae", round_, "to.x.msgpack")
    files = {entry["state"]: b"s", entry["forward"]: b"f", manifest.backward["module000_obs"]: b"b"}
    return manifest, files


def test_commit_drops_its_stale_files_and_keeps_everything_else(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / "notes.txt").write_text("someone else's")
    (tmp_path / "data").mkdir()
    store.commit(*_manifest(1))
    store.commit(*_manifest(2))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([MANIFEST, "notes.txt", "data", *_manifest(2)[1]])
    assert store.holds_checkpoint()


def test_clear_removes_the_checkpoint_and_nothing_else(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / "notes.txt").write_text("someone else's")
    store.commit(*_manifest(1))
    (tmp_path / "module001_vae.r0002.state.npz.tmp").write_bytes(b"half written")
    store.clear()
    assert not store.holds_checkpoint()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_data_digest_follows_the_values_not_their_memory_layout():
    data = np.random.default_rng(0).random((300, 7), dtype=np.float32)
    digest = data_digest(data)
    assert digest == data_digest(np.asfortranarray(data))
    assert digest == data_digest(data.astype(">f4"))  # the same values, big-endian
    assert digest != data_digest(data.reshape(700, 3))  # the same bytes, another shape
    assert digest != data_digest(data.astype(np.float64))
    changed = data.copy()
    changed[299, 6] += 1e-3
    assert digest != data_digest(changed)
