"""A synthetic run for the scale benchmark: the windows, embeddings and dedup stages of N windows, no model.

- `windows/tokens.bin`: random GPT-2 ids, [N, seq_len + 1], header through `write_header`;
- `windows/windows-00000.parquet` (WINDOWS, written batch by batch with pyarrow rather than the
  row-dict `PartWriter`, which would take minutes at 1M): documents of one or two pieces per
  window, a document continuing into the next window 30% of the time, 2% validation windows with
  documents of their own, the domain label of the window's mixture component;
- `embeddings/vectors.npy`: float32 unit vectors from a skewed mixture of 48 components in 384
  dimensions (plain k-means leaves it unbalanced);
- `dedup/duplicates-00000.parquet`: N / 100 duplicates of random windowed documents.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

DIM, COMPONENTS, DOMAINS = 384, 48, 16


def write_synthetic_run(run: Path, n: int, seq_len: int, seed: int = 0) -> None:
    """The windows, embeddings and dedup stages of an N-window run, in the run layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from splitlm.schemas.manifest import StageManifest
    from splitlm.schemas.router import EmbedderSpec
    from splitlm.schemas.tables import DUPLICATES, WINDOWS, check_schema
    from splitlm.schemas.tokens import write_header
    from splitlm.tokenizer import load_tokenizer

    rng = np.random.default_rng(seed)
    tok = load_tokenizer("gpt2")
    width, chunk = seq_len + 1, 8192
    for stage in ("windows", "embeddings", "dedup"):
        (run / stage).mkdir(parents=True)

    digest = hashlib.sha256()
    with open(run / "windows" / "tokens.bin", "wb") as fh:
        for lo in range(0, n, chunk):
            data = rng.integers(0, tok.vocab_size, size=(min(chunk, n - lo), width), dtype=np.uint16).tobytes()
            fh.write(data)
            digest.update(data)
    write_header(run / "windows", np.dtype("<u2"), n, width, digest.hexdigest())

    weights = 1.0 / np.arange(1, COMPONENTS + 1) ** 0.8  # skewed mixture
    component_N = rng.choice(COMPONENTS, size=n, p=weights / weights.sum())
    centers = rng.normal(size=(COMPONENTS, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = np.lib.format.open_memmap(run / "embeddings" / "vectors.npy", mode="w+", dtype=np.float32,
                                        shape=(n, DIM))
    for lo in range(0, n, 65536):
        z = component_N[lo : lo + 65536]
        x = centers[z] + rng.normal(scale=0.045, size=(len(z), DIM))
        vectors[lo : lo + len(z)] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    vectors.flush()
    del vectors

    is_val = rng.random(n) < 0.02
    pieces = np.where(is_val, 1, 1 + (rng.random(n) < 0.5)).astype(np.int64)
    cont = (rng.random(n) < 0.3) & ~is_val & ~np.roll(is_val, -1)  # the last document goes on into the next window
    cont[-1] = False
    first_doc = np.concatenate([[0], np.cumsum(pieces - cont)[:-1]])
    splits = np.where(is_val, "val", "train")
    writer = pq.ParquetWriter(run / "windows" / "windows-00000.parquet", WINDOWS, compression="zstd")
    check_schema(writer.schema, WINDOWS, run / "windows")
    for lo in range(0, n, 65536):
        hi = min(lo + 65536, n)
        p = pieces[lo:hi]
        offsets = np.concatenate([[0], np.cumsum(p)]).astype(np.int32)
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], p)
        docs = np.repeat(first_doc[lo:hi], p) + within
        half, two = width // 2, np.repeat(p, p) == 2
        start = np.where(two, within * half, 0).astype(np.int32)  # offset of the piece in its window
        span = np.where(two, np.where(within == 0, half, width - half), width).astype(np.int32)
        piece = pa.StructArray.from_arrays(
            [pa.array(np.char.mod("doc-%09d", docs)), pa.array(np.full(len(docs), "synthetic.jsonl")),
             pa.array(start), pa.array(np.zeros(len(docs), np.int32)), pa.array(span),
             pa.array(np.zeros(len(docs), np.int64)), pa.array(span.astype(np.int64) * 4)],
            fields=list(WINDOWS.field("pieces").type.value_type))
        domain = np.char.mod("dom%02d", component_N[lo:hi] % DOMAINS)
        mix = pa.StructArray.from_arrays([pa.array(domain), pa.array(np.full(hi - lo, width, np.int32))],
                                         fields=list(WINDOWS.field("domain_mix").type.value_type))
        ones = np.arange(hi - lo + 1, dtype=np.int32)
        batch = pa.table({"window_id": np.arange(lo, hi, dtype=np.int64), "split": pa.array(splits[lo:hi]),
                          "domain": pa.array(domain), "domain_mix": pa.ListArray.from_arrays(ones, mix),
                          "pieces": pa.ListArray.from_arrays(pa.array(offsets), piece)}, schema=WINDOWS)
        writer.write_table(batch, row_group_size=4096)
    writer.close()

    n_docs = int(first_doc[-1] + pieces[-1])
    kept = rng.integers(0, n_docs, size=n // 100)
    pq.write_table(pa.table({
        "doc_id": pa.array(np.char.mod("dup-%09d", np.arange(len(kept)))),
        "duplicate_of": pa.array(np.char.mod("doc-%09d", kept)), "kind": pa.array(np.full(len(kept), "near")),
        "domain": pa.array(np.full(len(kept), None, object), pa.string()),
        "source": pa.array(np.full(len(kept), "synthetic.jsonl")), "line": pa.array(np.arange(len(kept)))},
        schema=DUPLICATES), run / "dedup" / "duplicates-00000.parquet")

    embedder = EmbedderSpec(model_id="synthetic", weights_sha256="0" * 64, mode="truncate", precision="fp32",
                            max_pieces=256, dimension=DIM, pooling="mean", normalized=True)
    manifests = {
        "windows": ({"tokenizer": "gpt2", "seq_len": seq_len}, {"windows": n, "windows_val": int(is_val.sum()),
                                                               "tokenizer_sha256": tok.sha256, "seq_len": seq_len}),
        "embeddings": ({"storage": "float32"}, {"windows": n, "dimension": DIM, "storage": "float32",
                                                "embedder": embedder.model_dump()}),
        "dedup": ({}, {"documents_duplicate": len(kept)}),
    }
    for stage, (config, counts) in manifests.items():
        manifest = StageManifest(stage=stage, config=config, config_hash="synthetic", input_fingerprint="synthetic",
                                 counts=counts)
        (run / stage / "manifest.json").write_text(manifest.model_dump_json(indent=2) + "\n")
