"""Checkpoints that verify themselves: `save_pretrained` folders with a manifest, checked on load.

`save` writes the model with `save_pretrained` (safetensors) into a temporary folder, adds
`checkpoint.json` (the size of every file, and the sha256 of every file up to `HASH_LIMIT`: the
config and, for the CPU sizes, the weights too) and renames the folder into place.

`load` checks before transformers reads a byte: the manifest's sizes and hashes (a folder saved
before manifests existed has none), the safetensors header, and every tensor's name and shape
against the model its config.json describes. Transformers itself would re-initialise a missing or
mis-shaped tensor at random with a warning, and fail on a truncated file with a low-level error.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModelForCausalLM

from splitlm.core.atomic import atomic_write_text, fresh_folder, publish_folder
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.hashing import sha256_file

MANIFEST = "checkpoint.json"
WEIGHTS = "model.safetensors"
HASH_LIMIT = 256 * 2**20
"""Files up to this size (256 MiB) are hashed when saved and checked when loaded; larger ones by size."""
REDO = "delete the job folder that holds it and rerun `train split` with the same flags"


def save(model: torch.nn.Module, folder: Path) -> None:
    """`save_pretrained` plus `checkpoint.json` into a temporary folder, then renamed into place."""
    tmp = fresh_folder(folder.with_name(f".{folder.name}.partial"))
    model.save_pretrained(tmp)
    files = {}
    for path in sorted(p for p in tmp.iterdir() if p.is_file()):
        size = path.stat().st_size
        files[path.name] = {"bytes": size, "sha256": sha256_file(path) if size <= HASH_LIMIT else None}
    atomic_write_text(tmp / MANIFEST, json.dumps({"files": files}, indent=2) + "\n")
    publish_folder(tmp, folder)


def _check_manifest(folder: Path) -> None:
    path = folder / MANIFEST
    if not path.exists():
        return
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise SchemaError(f"{path}: not a checkpoint manifest ({err}); {REDO}") from None
    for name, want in files.items():
        file = folder / name
        if not file.exists():
            raise SchemaError(f"{file}: missing, {path.name} lists it; {REDO}")
        size = file.stat().st_size
        if size != want["bytes"]:
            raise SchemaError(f"{file}: {size:,} bytes, {path.name} says {want['bytes']:,} (truncated?); {REDO}")
        if want.get("sha256") and sha256_file(file) != want["sha256"]:
            raise SchemaError(f"{file}: sha256 differs from {path.name} (the file is corrupted); {REDO}")


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    try:
        with safe_open(weights, "pt") as fh:
            return {name: tuple(fh.get_slice(name).get_shape()) for name in fh.keys()}
    except (SafetensorError, OSError) as err:
        raise SchemaError(f"{weights}: not a readable safetensors file ({err}); {REDO}") from None


def _expected_shapes(folder: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, set[str]]]:
    """Shapes the config asks for, and for each name the names sharing its tensor (tied weights)."""
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise SchemaError(f"{folder / 'config.json'}: not a model config ({err}); {REDO}") from None
    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(param), set()).add(name)
    aliases = {name: group for group in tied.values() for name in group}
    return shapes, aliases


def verify(folder: Path) -> None:
    """Refuse (SchemaError, one line naming the file) a checkpoint that is not what it says it is."""
    _check_manifest(folder)
    weights = folder / WEIGHTS
    stored = _stored_shapes(weights)
    shapes, aliases = _expected_shapes(folder)
    for name, shape in stored.items():
        if name not in shapes:
            raise SchemaError(f"{weights}: tensor {name} is not part of the model config.json describes; {REDO}")
        if shape != shapes[name]:
            want = list(shapes[name])
            raise SchemaError(f"{weights}: tensor {name} has shape {list(shape)}, config.json asks for {want}; {REDO}")
    missing = [n for n in shapes if n not in stored and not aliases.get(n, set()) & set(stored)]
    if missing:
        raise SchemaError(f"{weights}: no tensor {missing[0]} ({len(missing)} missing in all); {REDO}")


def require(folder: Path) -> None:
    """A ConfigError unless `folder` holds a saved model (config and weights)."""
    if not (folder / "config.json").exists() or not (folder / WEIGHTS).exists():
        raise ConfigError(f"{folder}: no finished model; run `train split` to completion first")


def load(folder: Path, check: bool = True):
    """The model of a checkpoint folder (verified first unless the caller has), in fp32 with SDPA attention."""
    require(folder)
    if check:
        verify(folder)
    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
