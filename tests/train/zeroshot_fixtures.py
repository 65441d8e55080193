"""A TRAIN folder with a real router: the shared split run plus a static-embedder router of the tiny run.

The tiny run has no router (its tests route with doubles). Here a copy of it gets one built the way
`curate cluster` builds it: centroids = the normalised mean static-embedder vector of each cluster's
training windows (prefix text), biases 0, saved with `Router.save`. `train split`'s `copy_router`
then copies it into a hard-linked copy of the shared TRAIN folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from splitlm.schemas.layout import RunLayout
from splitlm.schemas.run import RunSummary

PREFIX_TOKENS = 32


def run_with_router(tiny_run: Path, root: Path) -> Path:
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.config import EmbedConfig
    from splitlm.curate.embed.static import StaticEmbedder
    from splitlm.schemas.router import EmbedderSpec, RouterSpec
    from splitlm.schemas.tokens import TokenArray
    from splitlm.tokenizer import load_tokenizer

    run = root / "run"
    shutil.copytree(tiny_run, run)
    info = RunSummary.read(run)
    tok = load_tokenizer(info.tokenizer)
    embedder = StaticEmbedder(EmbedConfig(name="static"))
    centroids = []
    for k in range(info.k):
        tokens = np.asarray(TokenArray(RunLayout(run).shard(k, info.k, "train")).tokens)
        x = embedder.encode(tok.decode_batch([row[:PREFIX_TOKENS].tolist() for row in tokens]))
        mean = x.mean(0)
        centroids.append(mean / np.linalg.norm(mean))
    spec = RouterSpec(k=info.k, embedder=EmbedderSpec(**embedder.spec()), tokenizer=info.tokenizer,
                      tokenizer_sha256=info.tokenizer_sha256, prefix_tokens=PREFIX_TOKENS, corpus_fingerprint="test")
    (run / "clusters").mkdir(exist_ok=True)
    Router(np.asarray(centroids, np.float32), np.zeros(info.k, np.float32), spec, embedder).save(run / "clusters")
    return run


def train_with_router(split_train: Path, run: Path, root: Path) -> Path:
    """A hard-linked copy of `split_train` whose split.json names `run`, with the router copied in."""
    from splitlm.train.split import copy_router

    train = root / "train"
    shutil.copytree(split_train, train, copy_function=os.link)
    config = json.loads((train / "split.json").read_text())
    (train / "split.json").unlink()  # a hard link: never write through it
    (train / "split.json").write_text(json.dumps({**config, "run": str(run)}, indent=2) + "\n")
    copy_router(run, train)
    return train
