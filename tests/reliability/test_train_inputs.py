"""Bad input to `train split/eval/fit/plan`: one `error:` line naming the flag or file, exit 1, nothing half-written.

Each case runs the real command in a subprocess. `train split` checks flags, budget and shards
before it imports the training code, so its cases take a second or a few; `train eval` cases load
torch and transformers first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.schemas.layout import RunLayout, TrainLayout
from splitlm.schemas.tokens import write_header

from ..train.conftest import write_run
from .conftest import assert_clean_error

SPLIT = {"--total-tokens": "1536", "--split-at": "0", "--batch-size": "2", "--eval-every": "768",
         "--eval-windows": "2", "--threads": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A curated run: 3 clusters, 129-token windows (tests/train/conftest.py)."""
    return write_run(tmp_path_factory.mktemp("run"))


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _split_args(run: Path, out: Path, **changes: str) -> list[str]:
    flags = {**SPLIT, **{f"--{k.replace('_', '-')}": v for k, v in changes.items()}}
    return ["train", "split", str(run), "--out", str(out), *(x for kv in flags.items() for x in kv)]


@pytest.mark.parametrize("flag, value", [
    ("--total-tokens", "nan"), ("--total-tokens", "inf"), ("--total-tokens", "0"), ("--split-at", "nan"),
    ("--split-at", "-1k"), ("--batch-size", "0"), ("--batch-size", "-2"), ("--eval-every", "inf"),
    ("--warmup-tokens", "nan"), ("--eval-windows", "-1"), ("--seed", "-1"), ("--size", "nan"),
    ("--arch", "gpt3"), ("--precision", "fp8"),
])  # fmt: skip
def test_split_flags_are_checked_before_anything_is_written(cli, run, tmp_path, flag, value):
    out = tmp_path / "train"
    result = cli(*_split_args(run, out, **{flag[2:].replace("-", "_"): value}))
    assert_clean_error(result, flag, value)
    assert not out.exists()


@pytest.mark.parametrize("flag, value", [
    ("--parallel", "0"), ("--threads", "-1"), ("--clusters", "7"), ("--split-at", "2k"),  # 2k: no steps left to branch
])  # fmt: skip
def test_split_flags_checked_against_the_run(cli, run, tmp_path, flag, value):
    out = tmp_path / "train"
    assert_clean_error(cli(*_split_args(run, out, **{flag[2:]: value})), flag)
    assert not out.exists()


@pytest.mark.slow
def test_a_refused_split_leaves_nothing_that_blocks_the_corrected_one(cli, run, tmp_path):
    out = tmp_path / "train"
    assert_clean_error(cli(*_split_args(run, out, size="nan")), "--size")
    assert_clean_error(cli(*_split_args(run, out, batch_size="0")), "--batch-size")
    result = cli(*_split_args(run, out, clusters="0"))  # 6 steps of pretraining, one branch of 2
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(TrainLayout(out).config.read_text())["size"] == "tiny"
    assert TrainLayout(out).losses_csv.exists()


def test_a_cluster_without_validation_windows_is_refused_up_front(cli, run, tmp_path):
    broken = _copy(run, tmp_path)
    for k in (0, 2):
        val = RunLayout(broken).shard(k, 3, "val")
        (val / "tokens.bin").write_bytes(b"")
        write_header(val, np.dtype("<u2"), 0, 129, "0" * 64)
        pq.write_table(pq.read_table(val / "index.parquet").slice(0, 0), val / "index.parquet")
    out = tmp_path / "train"
    assert_clean_error(cli(*_split_args(broken, out)), "cluster-00, cluster-02", "--val-min-windows")
    assert not out.exists()


def _truncate_tokens(folder: Path) -> None:
    data = (folder / "tokens.bin").read_bytes()
    (folder / "tokens.bin").write_bytes(data[:-100])


def _drop_index_row(folder: Path) -> None:
    table = pq.read_table(folder / "index.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), folder / "index.parquet")


@pytest.mark.parametrize("damage, message", [(_truncate_tokens, "expected"), (_drop_index_row, "index.parquet lists")])
def test_a_damaged_shard_is_refused_naming_its_file(cli, run, tmp_path, damage, message):
    broken = _copy(run, tmp_path)
    shard = RunLayout(broken).shard(1, 3, "train")
    damage(shard)
    out = tmp_path / "train"
    assert_clean_error(cli(*_split_args(broken, out)), str(shard / "tokens.bin"), message)
    assert not out.exists()


def _train_folder(tmp_path: Path) -> Path:
    """A TRAIN folder with untrained tiny models where `train split` would save them."""
    from splitlm.train import checkpoint, models

    train = tmp_path / "train"
    config = models.build_config(models.get_size("tiny"), "gpt2", 2048, 0, 129)
    model = models.build_model(config, seed=0)
    for folder in [train / "pretrain" / "final", *(TrainLayout(train).branch(0, k, 3) / "final" for k in range(3))]:
        checkpoint.save(model, folder)
    return train


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, manifest, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-1000]), True, "checkpoint.json says"),
    (_flip, True, "sha256 differs"),
    (lambda p: p.write_bytes(p.read_bytes()[:-1000]), False, "not a readable safetensors file"),
])  # fmt: skip
def test_a_damaged_checkpoint_is_refused_naming_its_file(cli, run, tmp_path, damage, manifest, message):
    train = _train_folder(tmp_path)
    final = TrainLayout(train).branch(0, 1, 3) / "final"
    if not manifest:
        (final / "checkpoint.json").unlink()
    damage(final / "model.safetensors")
    assert_clean_error(cli("train", "eval", train, "--run", run), str(final / "model.safetensors"), message)
    assert not (train / "routed").exists()


def test_eval_batch_size(cli, run, tmp_path):
    assert_clean_error(cli("train", "eval", tmp_path, "--run", run, "--batch-size", "0"), "--batch-size")


@pytest.mark.parametrize("flag, value", [
    ("--budget", "nan"), ("--budget", "inf"), ("--budget", "0"), ("--size", "nan"), ("--size", "-1"),
    ("--k", "0"), ("--cpt-step", "-1"), ("--cpt-step", "nan"), ("--flat-tol", "nan"), ("--extrapolate-from", "0,1e6"),
])  # fmt: skip
def test_plan_flags(cli, tmp_path, flag, value):
    args = {"--budget": "4e5", "--size": "1e6", flag: value}
    result = cli("train", "plan", tmp_path / "fit", *(x for kv in args.items() for x in kv))
    assert_clean_error(result, flag, value.split(",")[0])


@pytest.fixture
def table(tmp_path) -> Path:
    """Six losses of one cluster, as `train split` writes them."""
    rows = ["size,n_params,pt_tokens,cpt_tokens,cluster,eval_cluster,split_at,step,eval_loss"]
    rows += [f"tiny,8500000,{d},{dk},0,0,{s},{i + 1},{8 - i * 0.3}"
             for i, (d, dk, s) in enumerate([(4096, 0, -1), (8192, 0, -1), (12288, 0, -1), (16384, 0, -1),
                                              (0, 4096, 0), (8192, 2048, 8192)])]
    path = tmp_path / "losses.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


FIT = ["--keep", "0.5,12", "--token-unit", "1e3", "--n-unit", "1e6", "--bound", "E0=0,12"]


@pytest.mark.parametrize("flag, value", [
    ("--keep", "nan,4"), ("--keep", "4"), ("--keep", "5,1"), ("--n-unit", "0"), ("--token-unit", "inf"),
    ("--delta", "0"), ("--starts", "0"), ("--hops", "-1"), ("--seed", "-1"), ("--bound", "E0=nan,1"),
    ("--bound", "E0=-inf,1"), ("--drop-highest", "-1"),
])  # fmt: skip
def test_fit_flags(cli, table, tmp_path, flag, value):
    assert_clean_error(cli("train", "fit", table, *FIT, flag, value, "--out", tmp_path / "fit"), flag)
    assert not (tmp_path / "fit").exists()


def test_fit_names_the_row_with_text_in_the_loss_column(cli, table, tmp_path):
    lines = table.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",n/a"
    table.write_text("\n".join(lines) + "\n")
    result = cli("train", "fit", table, *FIT, "--out", tmp_path / "fit")
    assert_clean_error(result, f"{table}:4", "--columns loss", "'n/a'")


@pytest.mark.parametrize("under", [False, True])
def test_fit_out_that_is_a_file(cli, table, tmp_path, under):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    out = blocker / "fit" if under else blocker
    assert_clean_error(cli("train", "fit", table, *FIT, "--out", out), "--out", str(blocker))


def test_split_out_that_is_a_file(cli, run, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    assert_clean_error(cli(*_split_args(run, blocker)), "--out", str(blocker))


def test_fit_with_fewer_points_than_parameters_is_refused(cli, table, tmp_path):
    result = cli("train", "fit", table, *FIT, "--by", "cluster", "--out", tmp_path / "fit")
    line = assert_clean_error(result, "split law for cluster 0: 6 points for 12 parameters", "--allow-underdetermined")
    assert "cannot pin down" in line and "Ns" in line and "--share" in line
    assert not (tmp_path / "fit").exists()
    assert_clean_error(cli("train", "fit", table, *FIT, "--share", "--out", tmp_path / "fit"), "--share", "--by")
