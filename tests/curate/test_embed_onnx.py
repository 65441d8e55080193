"""The int8 MiniLM backend: the real graph built from the packaged weights, against torch fp32."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from splitlm.core.errors import AssetError, ConfigError
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.model import Embedder
from splitlm.curate.embed.onnx import int8_path, provision_onnx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def int8_root(tmp_path_factory):
    """A cache folder holding only the int8 graph, built once per session (~10 s on 2 idle cores)."""
    root = tmp_path_factory.mktemp("cache")
    provision_onnx(root, check_only=False)
    return root


@pytest.fixture(scope="module")
def texts(news_path) -> list[str]:
    """6 long texts (several posts joined: MiniLM reads its 254-piece head), 3 short ones."""
    with gzip.open(news_path, "rt") as f:
        posts = [json.loads(line)["text"] for _, line in zip(range(60), f)]
    joined = ["\n".join(posts[i : i + 6]) for i in range(0, 36, 6)]
    return joined + ["hi", "Subject: re: graphics cards", posts[40][:400]]


@pytest.fixture(scope="module")
def int8(int8_root) -> Embedder:
    return Embedder(EmbedConfig(precision="int8", device="cpu"), cache=int8_root)


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(EmbedConfig(precision="fp32", device="cpu"))


def test_int8_is_close_to_fp32_and_normalised(texts, int8, fp32):
    got_ND, ref_ND = int8.encode(texts), fp32.encode(texts)
    assert got_ND.shape == (len(texts), 384) and got_ND.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got_ND, axis=1), 1.0, atol=1e-5)
    cos_N = (got_ND * ref_ND).sum(1)
    assert cos_N[:6].min() >= 0.99, cos_N  # windows-like texts that fill MiniLM's 254 pieces
    assert cos_N[6:].min() >= 0.98, cos_N  # a few pieces: one rounding weighs more (0.988 for "hi")
    assert cos_N.max() < 1 - 1e-6  # really quantised: not the fp32 graph


def test_int8_is_deterministic_and_keeps_input_order(texts, int8):
    a_ND, b_ND = int8.encode(texts), int8.encode(texts)
    assert a_ND.tobytes() == b_ND.tobytes()
    # Activation scales are per batch, so other batch-mates move a row a little, never far.
    rev_ND = int8.encode(texts[::-1])[::-1]
    assert (a_ND * rev_ND).sum(1).min() > 0.99
    assert int8.encode([]).shape == (0, 384)


def test_int8_spec_and_mean_mode(texts, int8_root, int8):
    spec = int8.spec()
    assert spec["precision"] == "int8" and spec["dimension"] == 384 and spec["mode"] == "truncate"
    mean = Embedder(EmbedConfig(precision="int8", device="cpu", mode="mean", max_pieces=64), cache=int8_root)
    m_ND = mean.encode(texts[6:])  # "hi" is one chunk, the 400-character post several
    np.testing.assert_allclose(np.linalg.norm(m_ND, axis=1), 1.0, atol=1e-5)


def test_provision_is_idempotent_and_check_only_names_what_is_missing(int8_root, tmp_path):
    path = int8_path(int8_root)
    before = path.stat().st_mtime_ns
    assert provision_onnx(int8_root, check_only=True) == path
    assert provision_onnx(int8_root, check_only=False) == path and path.stat().st_mtime_ns == before  # not rebuilt
    with pytest.raises(AssetError, match="minilm-int8.onnx.*splitlm assets"):
        provision_onnx(tmp_path, check_only=True)
    with pytest.raises(AssetError, match="splitlm assets"):
        Embedder(EmbedConfig(precision="int8", device="cpu"), cache=tmp_path)
    stale = tmp_path / "stale"
    int8_path(stale).parent.mkdir(parents=True)
    int8_path(stale).write_bytes(path.read_bytes()[:1000])  # a truncated copy: its sha256 no longer matches
    int8_path(stale).with_suffix(".json").write_bytes(path.with_suffix(".json").read_bytes())
    with pytest.raises(AssetError, match="missing or stale"):
        provision_onnx(stale, check_only=True)


def test_int8_on_a_gpu_device_is_a_config_error():
    with pytest.raises(ConfigError, match="int8 runs on CPU only"):
        Embedder(EmbedConfig(precision="int8", device="cuda:0"))
