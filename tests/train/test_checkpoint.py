"""Checkpoints verify themselves: manifest sizes and hashes, safetensors header, tensor shapes vs config."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.train import checkpoint, models


@pytest.fixture
def saved(tmp_path):
    config = models.build_config(models.get_size("tiny"), "gpt2", 300, 0, 65)
    model = models.build_model(config, seed=3)
    checkpoint.save(model, tmp_path / "final")
    return model, tmp_path / "final"


def test_save_writes_a_manifest_and_load_gives_the_same_weights(saved):
    model, folder = saved
    files = json.loads((folder / "checkpoint.json").read_text())["files"]
    assert files["model.safetensors"]["bytes"] == (folder / "model.safetensors").stat().st_size
    assert len(files["model.safetensors"]["sha256"]) == 64 and "config.json" in files
    assert models.weights_sha256(checkpoint.load(folder)) == models.weights_sha256(model)
    assert not list(folder.parent.glob(".*partial"))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, manifest, message", [
    (_truncate, True, "bytes, checkpoint.json says"),
    (_flip_last_byte, True, "sha256 differs"),
    (_truncate, False, "not a readable safetensors file"),
])  # fmt: skip
def test_a_damaged_weights_file_is_refused_naming_it(saved, damage, manifest, message):
    _, folder = saved
    if not manifest:
        (folder / "checkpoint.json").unlink()  # as saved before manifests existed
    damage(folder / "model.safetensors")
    with pytest.raises(SchemaError, match=message) as err:
        checkpoint.load(folder)
    assert str(folder / "model.safetensors") in str(err.value) and "\n" not in str(err.value)


def test_tensors_are_checked_against_the_config(saved):
    _, folder = saved
    (folder / "checkpoint.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_embd": 288}))
    with pytest.raises(SchemaError, match=r"c_attn.bias has shape \[432\], config.json asks for \[864\]"):
        checkpoint.load(folder)
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_file(folder / "model.safetensors")
    del tensors["transformer.h.3.mlp.c_proj.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SchemaError, match="no tensor transformer.h.3.mlp.c_proj.weight"):
        checkpoint.load(folder)


def test_a_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(ConfigError, match="no finished model"):
        checkpoint.load(tmp_path)
