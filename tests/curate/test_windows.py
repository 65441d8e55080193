"""Windows: packing policies, token and document conservation, provenance, validation hold-out."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.curate.pipeline import WindowsRunConfig, run_windows
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.tokens import TokenArray
from splitlm.tokenizer import load_tokenizer

TEXTS = [f"Document {i} says " + "hello world, " * (3 + 7 * (i % 5)) + "the end." for i in range(40)]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t, "lab": f"L{i % 3}"}) + "\n"
                            for i, t in enumerate(TEXTS)))
    return path


def _run(corpus, out, **windows):
    from splitlm.curate.ingest import IngestConfig

    config = WindowsRunConfig(ingest=IngestConfig(domain_field="lab"), windows=WindowsConfig(**windows))
    return run_windows([corpus], out, config).model_dump(exclude_none=True)


def _rows(run):
    return pq.read_table(run / "windows" / "windows-00000.parquet").to_pylist()


@pytest.mark.parametrize("policy", ["concat", "drop"])
def test_tokens_and_documents_are_conserved(corpus, tmp_path, policy):
    run = tmp_path / "run"
    summary = _run(corpus, run, seq_len=31, policy=policy, val_fraction=0.2)
    tok = load_tokenizer("gpt2")
    assert summary["tokens_in"] == sum(len(tok.encode(t)) + 1 for t in TEXTS)
    assert summary["tokens"] + summary["tokens_dropped"] == summary["tokens_in"]
    assert summary["documents_windowed"] + summary["documents_dropped"] == len(TEXTS)
    arr = TokenArray(run / "windows")
    assert arr.tokens.shape == (summary["windows"], 32) and arr.tokens.dtype == np.uint16
    rows = _rows(run)
    assert [r["window_id"] for r in rows] == list(range(len(arr)))
    for row, tokens in zip(rows, arr.tokens):  # pieces tile the window and hold the right tokens
        assert sum(p["token_end"] - p["token_start"] for p in row["pieces"]) == 32
        for p in row["pieces"]:
            doc = int(p["doc_id"][1:])
            ids = tok.encode(TEXTS[doc]) + [tok.eos_id]
            got = tokens[p["offset"]: p["offset"] + p["token_end"] - p["token_start"]].tolist()
            assert got == ids[p["token_start"]: p["token_end"]]
    if policy == "drop":  # every window holds one document only
        assert all(len(r["pieces"]) == 1 for r in rows)


def test_char_spans_point_at_the_window_text(corpus, tmp_path):
    run = tmp_path / "run"
    _run(corpus, run, seq_len=15, val_fraction=0.0)
    tok = load_tokenizer("gpt2")
    arr = TokenArray(run / "windows")
    ends: dict[str, int] = {}
    for row, tokens in zip(_rows(run), arr.tokens):
        for p in row["pieces"]:
            text = TEXTS[int(p["doc_id"][1:])]
            ids = [t for t in tokens[p["offset"]: p["offset"] + p["token_end"] - p["token_start"]].tolist()
                   if t != tok.eos_id]
            assert tok.decode(ids) == text[p["char_start"]: p["char_end"]]
            assert p["char_start"] == ends.get(p["doc_id"], 0)  # consecutive pieces tile the text
            ends[p["doc_id"]] = p["char_end"]
            if p["token_end"] == len(tok.encode(text)) + 1:  # the piece holding the EOS ends the text
                assert p["char_end"] == len(text)


def test_validation_documents_never_share_a_window_with_training(corpus, tmp_path):
    run = tmp_path / "run"
    summary = _run(corpus, run, seq_len=31, val_fraction=0.3)
    rows = _rows(run)
    docs = {split: {p["doc_id"] for r in rows if r["split"] == split for p in r["pieces"]}
            for split in ("train", "val")}
    assert docs["val"] and docs["train"] and not docs["val"] & docs["train"]
    assert summary["windows_val"] == sum(r["split"] == "val" for r in rows)


def test_domain_is_the_label_holding_most_tokens(corpus, tmp_path):
    run = tmp_path / "run"
    _run(corpus, run, seq_len=63, val_fraction=0.0)
    for row in _rows(run):
        mix = row["domain_mix"]
        assert sum(m["tokens"] for m in mix) == 64
        assert row["domain"] == mix[0]["label"] and mix[0]["tokens"] == max(m["tokens"] for m in mix)


def test_byte_level_char_spans_match_tokenizer_offsets():
    """The fast path (byte counts) gives the offsets the tokenizer itself reports, on non-ASCII text too."""
    from splitlm.assets import demo_corpus_path
    from splitlm.curate.windows import CharSpans

    tok = load_tokenizer("gpt2")
    texts = [json.loads(line)["text"] for line in demo_corpus_path().read_text(encoding="utf-8").splitlines()
             if '"multilingual"' in line or '"wiki"' in line][:40] + ["naïve café 東京 🤖 ok"]
    for text, enc in zip(texts, tok.tokenizer.encode_batch(texts, add_special_tokens=False)):
        fast, slow = CharSpans(text, enc, tok.byte_lengths), CharSpans(text, enc, None)
        for i in range(0, len(enc.ids), 7):
            assert (fast.start(i), fast.end(i)) == (slow.start(i), slow.end(i)), (text[:30], i)


def test_a_document_longer_than_a_chunk_windows_as_its_whole_text(tmp_path):
    """Default chunk sizes: a 150k-character document (three chunks) gives the whole text's tokens, and its
    pieces' character spans tile the text."""
    from splitlm.assets import demo_corpus_path
    from splitlm.curate.chunking import CHUNK_CHARS
    from splitlm.curate.windows import write_windows

    lines = demo_corpus_path().read_text(encoding="utf-8").splitlines()
    text = "\n".join(json.loads(line)["text"] for line in lines)[: 2 * CHUNK_CHARS + 20_000]
    tok = load_tokenizer("gpt2")
    docs = [{"doc_id": "long", "text": text, "domain": None, "source": "s"}]
    counts = write_windows(iter([docs]), tmp_path, WindowsConfig(seq_len=1023, val_fraction=0.0))
    ids = tok.encode(text) + [tok.eos_id]
    arr = TokenArray(tmp_path)
    assert counts["tokens_in"] == len(ids) and arr.tokens.reshape(-1).tolist() == ids[: arr.tokens.size]
    pieces = [row["pieces"][0] for row in pq.read_table(tmp_path / "windows-00000.parquet").to_pylist()]
    assert [p["char_start"] for p in pieces[1:]] == [p["char_end"] for p in pieces[:-1]]
    for p in pieces[::7]:
        assert tok.decode(ids[p["token_start"]: p["token_end"]]) == text[p["char_start"]: p["char_end"]]
