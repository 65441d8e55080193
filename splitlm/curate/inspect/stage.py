"""`curate inspect`: audit a clustering before spending compute on it (paper Fig. 9, Table 5, App. F).

Reads a finished run and writes `RUN/inspect/`:
  domains.csv/.png      label x cluster counts and shares, entropy, top-cluster share, purity
                        (`domains`)
  routing_recall.csv/.png  R@1/R@5 of the full window from its P-token prefix, and routing accuracy
                        top-1/top-3, for each P (`routing`)
  routing_cv.csv/.png   each router's accuracy by P under 5-fold CV over training windows, and on the
                        held-out validation windows, with 95% intervals (`routing_cv`)
  similarity.csv/.png, pairs.csv  centroid cosines and the App. F pairs (`similarity`)
  clusters.csv, summary.json, report.md, manifest.json
Inspect writes nothing outside `RUN/inspect/`: its routing accuracy at the router's prefix length,
measured on more windows than the cards route, is in `clusters.csv` and the report; the cards keep
`curate cluster`'s. Inspect always recomputes (it is the audit); the folder
still appears atomically, complete with its manifest. Everything but the manifest is a pure
function of `summary.json` (`report`), so equal inputs and seed give equal bytes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.core.hashing import sha256_json
from splitlm.core.progress import Progress
from splitlm.curate import stage as curate_stage
from splitlm.curate.cluster.router import Router
from splitlm.curate.embed.stage import load_vectors
from splitlm.curate.inspect.domains import domain_stats
from splitlm.curate.inspect.report import render_files
from splitlm.curate.inspect.routing import prefix_routing, sample_windows
from splitlm.curate.inspect.routing_cv import CV_WINDOWS, block_size, plan, routing_config, routing_cv, split_windows
from splitlm.curate.inspect.similarity import cluster_similarity
from splitlm.curate.routing.files import stored_prefix_texts
from splitlm.curate.shards import read_labels
from splitlm.curate.window_columns import read_window_columns
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tokens import TokenArray

ALGORITHM = 4  # bump when the same config and input would give other output
PREFIX_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PLAIN_KEYS = ("on", "rows", "max_min", "objective", "ours_max_min", "ours_objective")  # timings stay out


@dataclass(frozen=True)
class InspectConfig:
    label_field: str | None = None
    """None/`domain`: the ingest label; `source`: input file; any other dotted field is re-read from the corpus."""
    prefix_lengths: tuple[int, ...] = PREFIX_LENGTHS
    """Prefix lengths P in tokens (the router's own prefix length is always added)."""
    sample: int = 10_000
    """Windows sampled for routing; also the retrieval pool N of R@k (paper: 10,000)."""
    seed: int = 0
    split: str = "val"
    """Windows to sample: val (held out, default), train or all (for runs with few validation windows)."""
    reference: int = 0
    """Reference cluster of the App. F pairs."""
    cv_windows: int = CV_WINDOWS
    """Training windows (a seeded sample) cross-validated for `routing_cv.csv`."""

    def __post_init__(self):
        if not self.prefix_lengths or min(self.prefix_lengths) < 1:
            raise ConfigError(f"--prefix-lengths {list(self.prefix_lengths)}: give positive token counts")
        if self.sample < 1:
            raise ConfigError(f"--sample {self.sample}: must be >= 1")
        if self.cv_windows < 0:
            raise ConfigError(f"--cv-windows {self.cv_windows}: must be >= 0")
        if self.split not in ("val", "train", "all"):
            raise ConfigError(f"--split {self.split!r}: choose val, train or all")
        object.__setattr__(self, "prefix_lengths", tuple(sorted(set(self.prefix_lengths))))


def run_inspect(run: Path, config: InspectConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Write `run/inspect/`; returns the summary (+ wall_seconds)."""
    config, progress = config or InspectConfig(), progress or Progress()
    layout = RunLayout(run)
    for stage in ("windows", "embeddings", "clusters", "cards"):
        if not layout.stage_manifest(stage).exists():
            raise ConfigError(f"{run}: no finished `{stage}` stage; run `curate cluster ... --out {run}` first")
    upstream = [StageManifest.read(layout.stage(s)).parts for s in ("windows", "clusters", "routing")
                if layout.stage_manifest(s).exists()]
    layout.stage_manifest("inspect").unlink(missing_ok=True)  # an audit always reruns (see docstring)
    summary: dict[str, Any] = {}

    def build(out: Path) -> dict[str, Any]:
        summary.update(_measure(Path(run), config, progress))
        seconds = summary.pop("_seconds_embedding")  # timings stay out of the rendered files
        seconds_cv = summary.pop("_seconds_routing_cv")
        render_files(summary, out)
        return {"windows_sampled": summary["sample"]["windows"], "texts_embedded": summary["routing"]["texts_embedded"],
                "seconds_embedding": seconds, "seconds_routing_cv": seconds_cv}

    manifest, _ = curate_stage.run(Path(run), "inspect", config, sha256_json(upstream), build, algorithm=ALGORITHM,
                            seed=config.seed, versions=("matplotlib", "torch"))
    summary["wall_seconds"] = manifest.wall_seconds  # after rendering: timings stay out of the files
    return summary


def parse_prefix_lengths(text: str) -> tuple[int, ...]:
    """`1,2,4,8` -> (1, 2, 4, 8); a one-line error naming the flag otherwise."""
    try:
        return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(f"--prefix-lengths {text!r}: give comma-separated token counts, e.g. 8,16,32") from None


def _measure(run: Path, config: InspectConfig, progress: Progress) -> dict[str, Any]:
    router = Router.load(run)
    lengths = tuple(sorted({*config.prefix_lengths, router.prefix_tokens}))
    k, tokens_NW = router.k, TokenArray(run / "windows")
    labels_N = read_labels(run)
    table = read_window_columns(run)
    is_val_N = table.is_val_N
    sim = cluster_similarity(router.centroids_KD, config.reference)
    dom = domain_stats(run, labels_N, k, config.label_field, table)
    ids = sample_windows(is_val_N, config.split, config.sample, config.seed)
    if len(ids) == 0:
        raise ConfigError(f"{run}: no {config.split} windows to sample; rerun `curate cluster` with --val-fraction > 0 "
                          "or pass --split all")
    vectors_ND = load_vectors(run)
    known = stored_prefix_texts(RunLayout(run).stage("routing"), router.tokenizer, tokens_NW)
    with progress.stage("prefixes") as advance:
        routing = prefix_routing(router, tokens_NW, vectors_ND, labels_N, ids, lengths, advance, known)
    train_pool, val_pool = split_windows(run, k)
    the_plan = plan(train_pool, val_pool, config.cv_windows, config.sample, config.seed)
    start = time.perf_counter()
    with progress.stage("routing cv") as advance:
        cv = routing_cv(router, routing_config(run), tokens_NW, vectors_ND, labels_N, the_plan, lengths,
                        routing.embedded, advance, routing)
    clusters = _cluster_rows(dom, routing.hits(router.prefix_tokens), labels_N[ids], is_val_N[ids], k)
    balance = StageManifest.read(run / "clusters").counts
    pool = len(is_val_N) if config.split == "all" else int(is_val_N.sum() if config.split == "val" else (~is_val_N).sum())
    return {
        "k": k, "windows": int(len(labels_N)), "window_tokens": int(tokens_NW.seq_len + 1),
        "embedder": router.spec.embedder.model_dump(), "router_prefix_tokens": router.prefix_tokens,
        "config": {"label_field": config.label_field, "prefix_lengths": list(lengths),
                   "sample": config.sample, "seed": config.seed, "split": config.split, "reference": config.reference},
        "sample": {"split": config.split, "seed": config.seed, "windows": int(len(ids)),
                   "pool": int(pool)},
        "domains": {"field": dom.field, "labels": dom.labels, "counts": dom.counts_LK.tolist()},
        "routing": {"rows": [r.__dict__ for r in routing.rows], "texts_embedded": routing.texts_embedded,
                    "vectors_reused": routing.vectors_reused, "texts_from_routing": routing.texts_from_routing},
        "similarity": {"cosine": np.round(sim.cos_KK, 6).tolist(), "pairs": [p.__dict__ for p in sim.pairs]},
        "clusters": clusters,
        "balance": {"max_min": balance["max_min"], "objective": balance["objective"],
                    "plain_faiss": {key: balance["plain_faiss"][key] for key in PLAIN_KEYS
                                    if key in balance.get("plain_faiss", {})}},
        "routing_cv": {"folds": 5, "block": block_size(len(the_plan.train_ids)), "train_windows": len(train_pool), "cv_windows": len(the_plan.train_ids),
                       "val_windows": len(the_plan.val_ids), "val_pool": len(val_pool),
                       "rows": [r.__dict__ for r in cv.rows]},
        "_seconds_embedding": round(routing.seconds_embedding, 2),
        "_seconds_routing_cv": round(time.perf_counter() - start, 2),
    }


def _cluster_rows(dom, hits_S: np.ndarray, own_S: np.ndarray, val_S: np.ndarray, k: int) -> list[dict[str, Any]]:
    """Per cluster: size, top label, purity, and routing accuracy over the sample and over its validation part."""
    rows = []
    for c in range(k):
        mine, mine_val = own_S == c, (own_S == c) & val_S
        rows.append({
            "name": cluster_name(c, k), "windows": int(dom.sizes_K[c]), "top_label": dom.top_label_K[c],
            "purity": round(float(dom.purity_K[c]), 4),
            "routing": _share(hits_S[mine]), "routing_sample": int(mine.sum()),
            "routing_val": _share(hits_S[mine_val]), "routing_val_sample": int(mine_val.sum()),
        })
    return rows


def _share(hits: np.ndarray) -> float | None:
    return round(float(hits.mean()), 4) if len(hits) else None


def write_data_cards(run: Path, dest: Path) -> list[Path]:
    """Copy a run's cards and inspect report (everything but manifests) into `dest` (e.g. data_cards/).

    `dest/cards/` and `dest/inspect/` are replaced; other files in `dest` (its README) are kept.
    """
    run, dest = Path(run), Path(dest)
    if not (run / "inspect" / "summary.json").exists():
        raise ConfigError(f"{run}: no inspect report; run `curate inspect {run}` first")
    written = []
    for sub in ("cards", "inspect"):
        target = dest / sub
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in sorted((run / sub).iterdir()):
            if path.is_file() and path.name != "manifest.json":
                shutil.copyfile(path, target / path.name)
                written.append(target / path.name)
    return written
