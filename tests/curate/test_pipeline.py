"""The windows pipeline end to end: run manifest, determinism, skip on rerun, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splitlm.curate.ingest import IngestConfig
from splitlm.curate.pipeline import WindowsRunConfig, run_windows

REQUIRED = ["documents_in", "documents_quarantined", "documents_duplicate", "documents_dropped",
            "documents_windowed", "windows", "tokens", "seq_len", "tokenizer", "seed"]


def data_files(run: Path) -> dict[str, bytes]:
    """Every output file except manifests (which record wall times)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and ".work" not in p.parts}


def _head(news_path, out: Path, n: int, extra: str = "") -> Path:
    import gzip

    with gzip.open(news_path, "rt") as src, open(out, "w") as dst:
        for _, line in zip(range(n), src):
            dst.write(line)
        dst.write(extra)
    return out


@pytest.fixture(scope="module")
def news_sample(tmp_path_factory, news_path):
    # one bad row to account for
    return _head(news_path, tmp_path_factory.mktemp("news") / "news.jsonl", 1500, '{"text": "broken\n')


def test_run_manifest_adds_up(news_sample, tmp_path):
    config = WindowsRunConfig(ingest=IngestConfig(domain_field="meta.newsgroup"))
    summary = run_windows([news_sample], tmp_path / "run", config).model_dump(exclude_none=True)
    on_disk = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert on_disk == summary and all(key in on_disk for key in REQUIRED)
    assert summary["documents_in"] == 1501
    assert summary["documents_quarantined"] == {"malformed_json": 1}
    assert summary["documents_duplicate"] > 0  # 20 Newsgroups has reposted messages
    total = (sum(summary["documents_quarantined"].values()) + summary["documents_duplicate"]
             + summary["documents_dropped"] + summary["documents_windowed"])
    assert total == summary["documents_in"]
    assert summary["windows"] * 2049 == summary["tokens"]


def test_same_seed_same_bytes_and_rerun_skips(news_sample, tmp_path):
    config = WindowsRunConfig()
    run_windows([news_sample], tmp_path / "a", config)
    run_windows([news_sample], tmp_path / "b", config)
    assert data_files(tmp_path / "a") == data_files(tmp_path / "b")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.bin")}
    from splitlm.core.progress import Progress

    progress = Progress()
    run_windows([news_sample], tmp_path / "a", config, progress)
    assert progress.notes == [f"{s}: up to date, skipped" for s in ("documents", "dedup", "windows")]
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "a").rglob("*.bin")}


def test_changed_option_recomputes_downstream_only(news_sample, tmp_path):
    from splitlm.core.progress import Progress
    from splitlm.curate.windows import WindowsConfig

    run_windows([news_sample], tmp_path / "a", WindowsRunConfig())
    progress = Progress()
    summary = run_windows([news_sample], tmp_path / "a", WindowsRunConfig(windows=WindowsConfig(seq_len=1023)),
                          progress).model_dump()
    assert progress.notes == ["documents: up to date, skipped", "dedup: up to date, skipped"]
    assert summary["seq_len"] == 1023


def _curate(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "splitlm.cli.curate", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_stage_then_rerun_is_byte_identical(news_path, tmp_path):
    args = [str(_head(news_path, tmp_path / "news.jsonl", 6000)), "--domain-field", "meta.newsgroup"]
    clean = _curate(["windows", *args, "--out", str(tmp_path / "clean")])
    assert clean.wait() == 0, clean.stderr.read().decode()
    killed = tmp_path / "killed"
    proc = _curate(["windows", *args, "--out", str(killed)])
    deadline = time.time() + 300
    while not any(killed.glob(".work/windows/*/group-*/tokens-00000.bin")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it write part of the stage
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "windows").exists(), "a half-written stage is visible under its final name"
    rerun = _curate(["windows", *args, "--out", str(killed)])
    assert rerun.wait() == 0, rerun.stderr.read().decode()
    assert data_files(killed) == data_files(tmp_path / "clean")
