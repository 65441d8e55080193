"""The Ray engine embeds with real Ray actors and agrees with the local engine."""

from __future__ import annotations

import numpy as np
import pytest

from splitlm.curate.embed.stage import EmbeddingsConfig, write_embeddings
from splitlm.curate.pipeline import WindowsRunConfig, run_windows
from splitlm.curate.windows import WindowsConfig
from tests.curate.test_cluster import sample


@pytest.mark.slow
def test_ray_engine_matches_local(news_path, tmp_path):
    corpus = sample(news_path, tmp_path / "news.jsonl", 30)
    run = tmp_path / "run"
    run_windows([corpus], run, WindowsRunConfig(windows=WindowsConfig(seq_len=255)))
    vectors = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        out.mkdir()
        config = EmbeddingsConfig(part_size=16, engine=engine, ray_workers=2)
        counts = write_embeddings(run, out, config, key=engine)
        assert counts["engine"] == engine and counts["parts_resumed"] == 0
        vectors[engine] = np.load(out / "vectors.npy")
    local, ray = vectors["local"], vectors["ray"]
    assert local.shape == ray.shape and len(local) > 32  # several parts went through the actors
    assert np.min(np.sum(local * ray, axis=1)) > 0.999
