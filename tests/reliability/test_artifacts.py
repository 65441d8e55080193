"""Loads check what they load: vectors against their manifest, stage files against their sha256."""

from __future__ import annotations

import numpy as np
import pytest

from splitlm.core.errors import SchemaError
from splitlm.core.stage import hash_files
from splitlm.curate.embed.stage import load_vectors
from splitlm.schemas.manifest import StageManifest


def _embeddings(run, stored: np.ndarray, windows: int, dim: int):
    folder = run / "embeddings"
    folder.mkdir(parents=True)
    np.save(folder / "vectors.npy", stored)
    manifest = StageManifest(stage="embeddings", config={}, config_hash="0", input_fingerprint="0",
                             counts={"windows": windows, "dimension": dim, "storage": "float32"},
                             parts=hash_files(folder))
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder


def test_vectors_that_match_their_manifest_load(tmp_path):
    _embeddings(tmp_path, np.ones((5, 4), np.float32), 5, 4)
    assert load_vectors(tmp_path).shape == (5, 4)


@pytest.mark.parametrize("stored", [np.ones((4, 4), np.float32), np.ones((5, 3), np.float32),
                                    np.ones((5, 4), np.float16)])
def test_vectors_of_another_shape_or_dtype_are_refused(tmp_path, stored):
    _embeddings(tmp_path, stored, 5, 4)
    with pytest.raises(SchemaError, match=r"vectors\.npy: .*manifest says float32\[5, 4\]"):
        load_vectors(tmp_path)


def test_truncated_vectors_are_refused(tmp_path):
    folder = _embeddings(tmp_path, np.ones((50, 4), np.float32), 50, 4)
    data = (folder / "vectors.npy").read_bytes()
    (folder / "vectors.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError, match=r"vectors\.npy: not a complete \.npy array"):
        load_vectors(tmp_path)


def test_check_files_names_changed_missing_and_unlisted_files(tmp_path):
    folder = _embeddings(tmp_path, np.ones((5, 4), np.float32), 5, 4)
    manifest = StageManifest.read(folder)
    manifest.check_files(folder)  # untouched: silent
    (folder / "extra.txt").write_text("x")
    with pytest.raises(SchemaError, match="extra.txt: not listed"):
        manifest.check_files(folder)
    (folder / "extra.txt").unlink()
    np.save(folder / "vectors.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(SchemaError, match="vectors.npy: sha256 differs"):
        manifest.check_files(folder, ["vectors.npy"])
    (folder / "vectors.npy").unlink()
    with pytest.raises(SchemaError, match="vectors.npy: missing"):
        manifest.check_files(folder)
