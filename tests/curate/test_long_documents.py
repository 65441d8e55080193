"""Long documents stream: chunked tokenisation gives the whole text's ids, streamed dedup its signature."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, pre_tokenizers

from splitlm.assets import demo_corpus_path
from splitlm.curate import chunking, windows
from splitlm.curate.dedup import exact_key, normalise, shingle_batches, shingles
from splitlm.tokenizer import _streamable, load_tokenizer

TOK = load_tokenizer("gpt2")
# Pieces that exercise every branch of the GPT-2 regex and the cut rules: contractions, runs of each
# class, ASCII and Unicode whitespace (some of it whitespace to one Unicode version and not another),
# format characters, combining marks, letters and digits outside ASCII.
ATOMS = ["a", "bc", "Z", "s", "ll", "re", "1", "42", "'", "'s", "'ll", ".", "!?", "-", "/", "=", "_", " ", "  ",
         "\n", "\n\n", "\t", "\r\n", " \n", "\u00a0", "\u0085", "\u2028", "\u3000", "\u001c", "\u180e",
         "\u200b", "\ufeff", "\u0301", "é", "ß", "東京", "Ω", "٣", "½", "🤖", "😀!", "\x00", "\x7f",
         "。", "、", "，", "「", "）", "ひら", "カタ", "ー", "・", "\u3099", "１２"]
texts = st.lists(st.sampled_from(ATOMS), max_size=60).map("".join) | st.text(max_size=60)


def _ids(text: str) -> list[int]:
    return TOK.tokenizer.encode(text, add_special_tokens=False).ids


def _demo_text(chars: int, seed: int) -> str:
    rows = [json.loads(line)["text"] for line in demo_corpus_path().read_text(encoding="utf-8").splitlines()]
    paragraphs = [p for text in rows for p in text.split("\n") if p.strip()]
    rng, parts, n = random.Random(seed), [], 0
    while n < chars:
        parts.append(rng.choice(paragraphs) + rng.choice(["\n", " ", "\n\n", "  "]))
        n += len(parts[-1])
    return "".join(parts)[:chars]


def test_the_gpt2_asset_is_streamable_and_other_pre_tokenizers_are_not(tmp_path):
    assert TOK.streamable
    model = json.loads(TOK.tokenizer.to_str())
    llama3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+"
    variants = {
        "prefix_space": lambda m: m["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True),
        "other_regex": lambda m: m["pre_tokenizer"]["pretokenizers"][0].update(pattern={"Regex": llama3}),
        "normalizer": lambda m: m.update(normalizer={"type": "NFC"}),
        "truncation": lambda m: m.update(truncation={"direction": "Right", "max_length": 1024, "strategy":
                                                     "LongestFirst", "stride": 0}),
        "added_token": lambda m: m["added_tokens"].append({**m["added_tokens"][0], "id": 50257,
                                                           "content": "hello world", "special": False}),
    }
    assert _streamable(model)
    byte_level_only = {**model, "pre_tokenizer": {**model["pre_tokenizer"]["pretokenizers"][1], "use_regex": True}}
    assert _streamable(byte_level_only)  # ByteLevel's own regex is GPT-2's
    for name, change in variants.items():
        changed = json.loads(json.dumps(model))
        change(changed)
        assert not _streamable(changed), name
    path = tmp_path / "tokenizer.json"  # and through loading: a file with a prefix space is not streamable
    variants["prefix_space"](model)
    path.write_text(json.dumps(model), encoding="utf-8")
    assert not load_tokenizer(str(path)).streamable


def test_the_regex_engine_sees_the_classes_the_cut_rules_assume():
    """The cut rules read `[^\\s]` with Python's `re`: every character the tokenizer's regex engine
    takes for whitespace must be whitespace to Python too (Python adds U+001C..U+001F). And the CJK
    letters and punctuation the rules cut between are, to the engine, letters and not letters."""
    split = pre_tokenizers.Split(Regex(r"\s"), behavior="isolated")
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    pieces = split.pre_tokenize_str("x".join(chars))  # non-space characters merge with the x's around them
    engine = {p for p, _ in pieces if len(p) == 1 and p != "x"}
    assert " " in engine and "\u3000" in engine
    assert not {c for c in engine if not c.isspace()}
    every = "".join(chars)
    letters, marks = (re.findall(f"[{ranges}]", every) for ranges in (chunking.CJK_LETTERS, chunking.CJK_PUNCTUATION))
    assert len(letters) > 20_000 and len(marks) == 14
    text = "".join(letter + marks[i % len(marks)] for i, letter in enumerate(letters))
    pieces = [p for p, _ in TOK.tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    assert len(pieces) == len(text)  # every letter and every mark a piece of its own


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, size=st.integers(1, 12))
def test_chunked_ids_are_the_whole_texts_ids(text, size):
    cuts = list(chunking.token_cuts(text, size))
    assert "".join(text[a:b] for a, b in cuts) == text
    boundaries = {0} | {end for _, (_, end) in TOK.tokenizer.pre_tokenizer.pre_tokenize_str(text)}
    assert {b for _, b in cuts} <= boundaries | {len(text)}  # every cut ends a GPT-2 piece
    assert chunking.encode_ids(TOK, text, size).tolist() == _ids(text)


def test_chunks_are_bounded_where_the_text_can_be_cut():
    rng = random.Random(0)
    blob = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") for _ in range(30_000))
    text = _demo_text(60_000, 1) + " " + blob + " " + "x" * 5_000 + "\n" + _demo_text(20_000, 2)
    cuts = list(chunking.token_cuts(text, 1_000))
    long = [(a, b) for a, b in cuts if b - a > 1_000]
    assert len(long) == 1 and text[long[0][0]: long[0][1]].strip(" \n") == "x" * 5_000  # the one uncuttable run
    assert chunking.encode_ids(TOK, text, 1_000).tolist() == _ids(text)


def test_encode_calls_stay_bounded():
    """The tokenizer never sees much more than `per_call` characters at once, however long the text."""
    seen = []

    class Spy:
        def encode_batch_fast(self, texts, add_special_tokens):
            seen.append(sum(map(len, texts)))
            return TOK.tokenizer.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

    text = _demo_text(200_000, 3)
    spy = dataclasses.replace(TOK, tokenizer=Spy())
    ids = [i for _, _, enc in chunking.encode_chunks(spy, text, size=2_000, per_call=10_000) for i in enc.ids]
    assert ids == _ids(text)
    assert len(seen) >= 15 and max(seen) < 10_000 + 2_000 + 100  # a group stops at the first chunk past per_call


def _windows(tmp_path, name, docs, config, tok):
    out = tmp_path / name
    out.mkdir()
    counts = windows.write_windows(iter([docs[:3], docs[3:]]), out, config)
    return counts, (out / "tokens.bin").read_bytes(), pq.read_table(out / "windows-00000.parquet").to_pylist()


@pytest.mark.parametrize("policy,seq_len", [("concat", 31), ("drop", 63), ("concat", 1500)])
def test_streamed_windows_are_the_whole_document_windows(tmp_path, monkeypatch, policy, seq_len):
    lengths = [900, 12_000, 40, 7_000, 3_100, 25_000]
    docs = [{"doc_id": f"d{i}", "text": _demo_text(n, 10 + i), "domain": f"L{i % 2}", "source": "s"}
            for i, n in enumerate(lengths)]
    config = windows.WindowsConfig(seq_len=seq_len, policy=policy, val_fraction=0.3)
    monkeypatch.setattr(windows, "CHUNK_CHARS", 500)
    monkeypatch.setattr(windows, "ENCODE_CHARS", 2_000)
    streamed = _windows(tmp_path, "streamed", docs, config, TOK)
    monkeypatch.setattr(windows, "load_tokenizer", lambda spec: dataclasses.replace(TOK, streamable=False))
    whole = _windows(tmp_path, "whole", docs, config, TOK)
    assert streamed[0] == whole[0] and streamed[0]["windows"] > 0
    assert streamed[1] == whole[1]
    assert streamed[2] == whole[2]
    assert any(p["token_start"] > 0 for row in streamed[2] for p in row["pieces"])  # documents span windows


words = st.lists(st.sampled_from(["a", "bb", "ccc", "東京", "x1", "é"]), max_size=40)
spaces = st.lists(st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", "\u3000", " \n "]), min_size=41, max_size=41)


@settings(max_examples=300, deadline=None)
@given(words=words, spaces=spaces, block=st.integers(1, 15), batch=st.integers(1, 5), n=st.integers(1, 6))
def test_streamed_dedup_keys_and_shingles_are_the_whole_texts(words, spaces, block, batch, n):
    text = spaces[0] + "".join(w + s for w, s in zip(words, spaces[1:]))
    assert exact_key(text, block) == hashlib.sha256(normalise(text).encode("utf-8")).digest()
    batches = list(shingle_batches(text, n, block, batch))
    assert all(1 <= len(b) <= batch for b in batches)
    assert [s for b in batches for s in b] == shingles(normalise(text), n)


def test_streamed_minhash_is_the_whole_texts():
    text = _demo_text(150_000, 4)
    whole, streamed = MinHash(num_perm=128, seed=1), MinHash(num_perm=128, seed=1)
    whole.update_batch(shingles(normalise(text), 5))
    for batch in shingle_batches(text, 5, block_chars=3_000, batch=500):
        streamed.update_batch(batch)
    assert np.array_equal(whole.hashvalues, streamed.hashvalues)
