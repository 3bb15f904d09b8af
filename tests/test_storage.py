"""The run's storage (`runtime.storage`) on a local disk: whole writes, listing, links,
deletion, and URIs refused clearly. Object storage: `test_sharding.py` runs on S3."""

import os
import re

import pytest

import runtime as srk
from runtime.errors import SerketError
from runtime.storage import Folder


def test_a_folder_writes_whole_files_lists_links_and_deletes(tmp_path):
    root = Folder(tmp_path)
    (root / "module001_gmm" / "round_001").write("z.txt", b"1\n2\n")
    module = root / "module001_gmm"
    module.link("round_001/z.txt", "z.txt")
    assert module.read("z.txt") == b"1\n2\n"
    assert os.stat(tmp_path / "module001_gmm" / "z.txt").st_nlink == 2  # a link, no copy
    assert module.files() == ["z.txt"] and module.folders() == ["round_001"]
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path / "module001_gmm"))
    module.delete_folder("round_001")
    module.delete("missing.txt")  # nothing there: nothing to do
    assert module.folders() == [] and module.read("z.txt") == b"1\n2\n"
    assert Folder(tmp_path / "nowhere").files() == []


def test_a_file_uri_is_a_local_folder_and_sub_folders_keep_a_uris_query(tmp_path):
    assert Folder(f"file://{tmp_path}").is_local
    child = Folder("s3://bucket/run?region=eu-west-1") / "module001_gmm"
    assert child.location == "s3://bucket/run/module001_gmm?region=eu-west-1"
    assert child.path == "bucket/run/module001_gmm" and not child.is_local


@pytest.mark.parametrize(
    "uri, problem",
    [("nosuch://bucket/run", "Unrecognized filesystem"), ("s3://b/r?bogus=1", "bogus")],
)
def test_a_bad_storage_uri_is_refused_before_anything_starts(uri, problem):
    with pytest.raises(
        SerketError, match=re.escape(f"storage '{uri}'") + f" cannot be opened: .*{problem}"
    ):
        srk.init(uri)
