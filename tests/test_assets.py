"""Offline assets: GPT-2 ids match tiktoken's r50k_base; missing assets name the fix."""

from __future__ import annotations

import pytest

from splitlm import assets
from splitlm.core.errors import AssetError, ConfigError
from splitlm.tokenizer import load_tokenizer

KNOWN = {
    "Hello world": [15496, 995],
    " the": [262],
    "<|endoftext|>": [27, 91, 437, 1659, 5239, 91, 29],  # literal text, never the special id
    "naïve café 東京": None,  # checked against tiktoken below
}


def test_gpt2_known_strings():
    tok = load_tokenizer("gpt2")
    assert tok.eos_id == 50256 and tok.vocab_size == 50257
    for text, ids in KNOWN.items():
        if ids is not None:
            assert tok.encode(text) == ids, text


def test_gpt2_matches_tiktoken_on_real_text():
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(assets.cache_dir() / "gpt2" / "gpt2.tiktoken"))
    ref = tiktoken.Encoding("r50k", pat_str=assets.GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={assets.EOT: 50256})
    texts = [line for line in assets.demo_corpus_path().read_text(encoding="utf-8").splitlines()[::25]]
    texts += list(KNOWN) + ["  leading spaces\n\n\ttabs  ", "emoji 🤖 and ğüş", "x" * 5000]
    tok = load_tokenizer("gpt2")
    assert tok.encode_batch(texts) == ref.encode_ordinary_batch(texts)
    assert all(tok.decode(ids) == t for t, ids in zip(texts, tok.encode_batch(texts)))


def test_missing_asset_names_the_command(tmp_path):
    with pytest.raises(AssetError, match="splitlm assets"):
        assets.gpt2_tokenizer_path(tmp_path)
    with pytest.raises(AssetError, match="splitlm assets"):
        assets.provision(tmp_path, check_only=True)


def test_tokenizer_from_file_folder_and_unknown(tmp_path):
    path = assets.gpt2_tokenizer_path()
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_bytes(path.read_bytes())
    assert load_tokenizer(str(path)).encode("Hello world") == [15496, 995]
    assert load_tokenizer(str(tmp_path / "tok")).sha256 == load_tokenizer("gpt2").sha256
    with pytest.raises(ConfigError, match="not-a-real/tokenizer"):
        load_tokenizer("not-a-real/tokenizer")


def test_demo_corpus_is_six_labelled_domains():
    import json

    docs = [json.loads(line) for line in assets.demo_corpus_path().read_text(encoding="utf-8").splitlines()]
    domains = {d["domain"] for d in docs}
    assert domains == {"c4", "code", "multilingual", "technical", "tiny", "wiki"}
    assert len({d["id"] for d in docs}) == len(docs)
    assert all(d["text"].strip() and "<|endoftext|>" not in d["text"] for d in docs)
