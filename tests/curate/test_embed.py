"""The real MiniLM on a small real sample: equivalence to sentence-transformers, bf16, modes, determinism."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from splitlm.core.errors import ConfigError
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.model import MODEL_ID, Embedder, _head, model_path, resolve_precision

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def texts(news_path) -> list[str]:
    """12 long texts (~2,000 word pieces: several posts joined) and 4 short ones, incl. empty."""
    with gzip.open(news_path, "rt") as f:
        posts = [json.loads(line)["text"] for _, line in zip(range(200), f)]
    long, buf = [], ""
    for post in posts:
        buf += post + "\n"
        if len(buf) > 8000:
            long.append(buf)
            buf = ""
        if len(long) == 12:
            break
    return long + ["", "hi", "Subject: re: graphics cards", posts[0][:300]]


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(EmbedConfig(precision="fp32", device="cpu"))


@pytest.fixture(scope="module")
def default() -> Embedder:
    return Embedder(EmbedConfig(device="cpu"))


def test_fp32_matches_sentence_transformers(texts, fp32):
    from sentence_transformers import SentenceTransformer

    ref_ND = SentenceTransformer(str(model_path()), device="cpu").encode(texts)
    emb_ND = fp32.encode(texts)
    assert emb_ND.shape == (len(texts), 384) and emb_ND.dtype == np.float32
    assert (emb_ND * ref_ND).sum(1).min() > 0.9999  # truncate = what encode does by default


def test_default_precision_is_close_to_fp32_and_normalised(texts, fp32, default):
    emb_ND = default.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(emb_ND, axis=1), 1.0, atol=1e-5)
    assert (emb_ND * fp32.encode(texts)).sum(1).min() >= 0.99
    assert np.isfinite(emb_ND).all()


def test_deterministic_and_order_restored(texts, default):
    a_ND, b_ND = default.encode(texts), default.encode(texts)
    assert a_ND.tobytes() == b_ND.tobytes()
    rev_ND = default.encode(texts[::-1])[::-1]
    assert (a_ND * rev_ND).sum(1).min() > 0.999  # same texts, other batches: same rows up to rounding
    assert default.encode([]).shape == (0, 384)


def test_truncate_reads_only_the_head_and_mean_reads_everything(texts):
    head = texts[0]
    tails = [head + " " + texts[1], head + " " + texts[2]]
    trunc = Embedder(EmbedConfig(precision="fp32", device="cpu"))
    mean = Embedder(EmbedConfig(mode="mean", precision="fp32", device="cpu"))
    t_ND = trunc.encode(tails + [head])
    assert np.abs(t_ND[0] - t_ND[1]).max() < 1e-6 and np.abs(t_ND[0] - t_ND[2]).max() < 1e-6
    m_ND = mean.encode(tails + [texts[13]])
    assert (m_ND[0] * m_ND[1]).sum() < 0.99  # the tails count in mean mode
    np.testing.assert_allclose(np.linalg.norm(m_ND, axis=1), 1.0, atol=1e-5)
    # A text within one chunk is one model call either way.
    assert np.abs(m_ND[2] - trunc.encode([texts[13]])[0]).max() < 1e-6


def test_mean_is_the_piece_weighted_mean_of_its_chunks(texts):
    mean = Embedder(EmbedConfig(mode="mean", precision="fp32", device="cpu", max_pieces=64))
    trunc = Embedder(EmbedConfig(precision="fp32", device="cpu", max_pieces=64))
    tok = mean._tokenizer
    ids = tok.encode(texts[15], add_special_tokens=False).ids[:150]  # chunks of 62, 62, 26 pieces
    chunks = [ids[s : s + 62] for s in range(0, len(ids), 62)]
    text = tok.decode(ids)
    assert tok.encode(text, add_special_tokens=False).ids == ids
    parts_CD = trunc.encode([tok.decode(c) for c in chunks])
    want_D = (parts_CD * np.array([len(c) for c in chunks])[:, None]).sum(0)
    assert (mean.encode([text])[0] * want_D / np.linalg.norm(want_D)).sum() > 0.9999


def test_spec(default):
    spec = default.spec()
    assert spec["model_id"] == MODEL_ID and spec["dimension"] == 384 and spec["max_pieces"] == 256
    assert spec["mode"] == "truncate" and spec["precision"] == resolve_precision("auto", "cpu")
    assert len(spec["weights_sha256"]) == 64


def test_head_cut_keeps_whole_words():
    assert _head("alpha beta gamma", 12) == "alpha beta"
    assert _head("short", 100) == "short"
    assert _head("x" * 50, 10) == "x" * 50  # no whitespace: keep everything


@pytest.mark.parametrize("bad", [{"mode": "max"}, {"precision": "int4"}, {"batch_size": 0}, {"max_pieces": 4}])
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        EmbedConfig(**bad)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_is_bf16_only_with_native_bf16(native):
    # int8 missed the 20 Newsgroups agreement bar on an AVX2 CPU, so auto never picks it.
    assert resolve_precision("auto", "cpu", native_bf16=native) == ("bf16" if native else "fp32")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_explicit_cpu_precision_is_kept(precision):
    assert resolve_precision(precision, "cpu", native_bf16=False) == precision


def test_precisions_a_device_cannot_run_are_config_errors():
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="int8 runs on CPU only"):
        resolve_precision("int8", "cuda")
    assert resolve_precision("fp16", "cuda:1") == "fp16"
