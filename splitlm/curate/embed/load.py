"""Which embedder: by the run's config (`--embedder`), or by the spec a router or manifest recorded.

Every stage that embeds asks here, so none hard-codes MiniLM: the embeddings stage (local and Ray)
loads `load_embedder(config)`, and the router, `curate route` and inspect get the embedder that made
a run's vectors from its recorded spec with `embedder_for_spec`, which refuses installed weights
whose sha256 differs from the recorded one. `model_pieces` gives the word-piece ids an embedder feeds
its model for each text (the exact model input), for any embedder.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from splitlm.core.errors import SchemaError
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.model import MODEL_ID, Embedder, model_path
from splitlm.curate.embed.static import STATIC_MODEL_ID, StaticEmbedder

NAMES = {MODEL_ID: "minilm", STATIC_MODEL_ID: "static"}


def load_embedder(config: EmbedConfig):
    """The embedder `config.name` names, loaded: `Embedder` (MiniLM) or `StaticEmbedder`."""
    return StaticEmbedder(config) if config.name == "static" else Embedder(config)


def embedder_for_spec(spec):
    """The embedder that made vectors recorded with `spec` (an `EmbedderSpec` or its dict).

    SchemaError when the spec names an unknown model or the installed weights differ from the
    recorded ones (its `weights_sha256`).
    """
    spec = spec if isinstance(spec, Mapping) else spec.model_dump()
    name = NAMES.get(spec["model_id"])
    if name is None:
        raise SchemaError(f"router.json: embedder {spec['model_id']!r} is not one this splitlm has "
                          f"({', '.join(sorted(NAMES))})")
    config = EmbedConfig(name=name, mode=spec["mode"], max_pieces=spec["max_pieces"],
                         precision="fp32" if name == "static" else spec["precision"])
    embedder = load_embedder(config)
    installed = embedder.spec()["weights_sha256"]
    if installed != spec["weights_sha256"]:
        raise SchemaError(f"the installed {name} weights (sha256 {installed[:12]}...) differ from the ones this router "
                          f"was built with (weights_sha256 {spec['weights_sha256'][:12]}... in router.json); "
                          "rerun `curate cluster` with these weights")
    return embedder


def model_pieces(embedder, texts: list[str]) -> list[list[int]]:
    """Per text, the word-piece ids `embedder` feeds its model (without [CLS]/[SEP]).

    Two texts with the same pieces get the same vector. MiniLM: the first `max_pieces - 2` pieces in
    `truncate` mode, all of them in `mean` mode (its chunks are cut from them).
    """
    if hasattr(embedder, "model_pieces"):
        return embedder.model_pieces(texts)
    tokenizer = _minilm_tokenizer()
    ids = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    if embedder.config.read_mode == "truncate":
        room = embedder.config.max_pieces - 2
        ids = [p[:room] for p in ids]
    return ids


@lru_cache(maxsize=1)
def _minilm_tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
