"""Render cluster cards to Markdown (YAML front matter as in Hugging Face dataset cards) and write them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from splitlm.core.markdown import cell
from splitlm.schemas.card import Card
from splitlm.schemas.layout import cluster_name


def _terms(terms: list[str]) -> str:
    return ", ".join(cell(t) for t in terms)


def _front_matter(card: Card) -> str:
    meta = {
        "pretty_name": f"splitlm {card.name}",
        "task_categories": ["text-generation"],
        "tags": ["splitlm", "cluster", f"embed-{card.embed_mode}"],
        # Paths relative to RUN, as `curate export RUN --format parquet` writes them.
        "configs": [{"config_name": card.name, "data_files": [
            {"split": "train", "path": f"export/parquet/{card.name}-train.parquet"},
            {"split": "validation", "path": f"export/parquet/{card.name}-val.parquet"}]}],
        "splitlm": {"cluster": card.cluster, "windows": card.windows, "tokens": card.tokens,
                    "share": round(card.share, 4), "top_terms": card.top_terms[:8], "domains": card.domains},
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def render_card(card: Card, k: int) -> str:
    lines = [_front_matter(card), f"# {card.name}: {_terms(card.top_terms[:5]) or '(no terms)'}", ""]
    routing = "n/a" if card.routing_accuracy is None else f"{card.routing_accuracy:.1%} of {card.routing_sample}"
    lines += [
        "| | |", "|---|---|",
        f"| windows (train / val) | {card.windows:,} ({card.train_windows:,} / {card.val_windows:,}) |",
        f"| tokens | {card.tokens:,} |",
        f"| share of run | {card.share:.1%} |",
        f"| size / mean size | {card.balance.ratio_to_mean:.3f} (run max/min {card.balance.run_max_min:.3f}) |",
        f"| top domain | {cell(card.top_domain) if card.top_domain else 'n/a'}"
        + (f" ({card.top_domain_share:.0%})" if card.top_domain_share is not None else "") + " |",
        f"| {card.routing_prefix_tokens}-token routing accuracy (val) | {routing} |",
        *_per_router(card),
        f"| duplicates removed (kept copy here) | {card.dedup_removals:,} |",
        f"| embedding | {card.provenance.embedder.get('model_id')} ({card.embed_mode}, "
        f"{card.provenance.embedder.get('precision')}) |",
        "", "The front matter's `data_files` are the Parquet files that `curate export RUN --format parquet` writes "
        "(`datasets.load_dataset(\"parquet\", data_files=...)` reads them); the shards themselves are raw token arrays.",
        "", "## Top terms", "", _terms(card.top_terms) or "(none)", "",
    ]
    if card.domains:
        lines += ["## Domains", "", "| domain | windows | share |", "|---|---:|---:|"]
        lines += [f"| {cell(d)} | {n:,} | {n / card.windows:.1%} |" for d, n in card.domains.items()]
        lines.append("")
    lines += ["## Nearest clusters", ""]
    lines += [f"- {cluster_name(n.cluster, k)} (centroid cosine {n.cosine:.3f})" for n in card.nearest_clusters]
    lines += ["", "## Exemplars (nearest the centroid)", ""]
    for ex in card.exemplars:
        lines += [f"**window {ex.window_id}** ({cell(ex.domain) if ex.domain else 'no label'}, "
                  f"distance {ex.distance:.3f})", "", "> " + cell(ex.snippet), ""]
    p = card.provenance
    lines += ["## Provenance", "", f"- config hash: `{p.config_hash[:16]}`",
              f"- corpus fingerprint: `{p.corpus_fingerprint[:16]}`", f"- tokenizer: `{p.tokenizer}`",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(p.versions.items())), ""]
    return "\n".join(lines)


def _per_router(card: Card) -> list[str]:
    """One row per router the run has (centroid; learned), on the same validation windows."""
    return [f"| {card.routing_prefix_tokens}-token routing accuracy (val), {name} router | "
            f"{'n/a' if acc is None else f'{acc:.1%}'} |" for name, acc in card.routing_accuracy_by_router.items()]


def render_index(cards: list[Card], clusters: dict[str, Any]) -> str:
    prefix = cards[0].routing_prefix_tokens if cards else 32
    lines = ["# Cluster cards", "",
             f"{len(cards)} clusters, {sum(c.windows for c in cards):,} windows, "
             f"{sum(c.tokens for c in cards):,} tokens. {_balance(clusters)}", "",
             f"| cluster | windows | share | top domain | routing@{prefix} | top terms |", "|---|---:|---:|---|---:|---|"]
    for c in cards:
        dom = f"{cell(c.top_domain)} ({c.top_domain_share:.0%})" if c.top_domain else "n/a"
        acc = "n/a" if c.routing_accuracy is None else f"{c.routing_accuracy:.0%}"
        lines.append(f"| [{c.name}]({c.name}.md) | {c.windows:,} | {c.share:.1%} | {dom} | {acc} | "
                     f"{_terms(c.top_terms[:6])} |")
    return "\n".join(lines) + "\n"


def _balance(clusters: dict[str, Any]) -> str:
    """Balance and objective, against plain faiss k-means on the rows it ran on (the fit sample)."""
    plain = clusters.get("plain_faiss")
    if not plain:  # the comparison was not asked for
        return f"Balance: max/min {clusters['max_min']:.3f}; k-means objective {clusters['objective']:.4f}."
    if "ours_max_min" not in plain:  # a manifest from before the comparison moved to the fit sample
        return (f"Balance: max/min {clusters['max_min']:.3f} (plain faiss k-means: {plain['max_min']:.2f}); k-means "
                f"objective {clusters['objective']:.4f} (plain: {plain['objective']:.4f}).")
    return (f"Balance: max/min {clusters['max_min']:.3f}; k-means objective {clusters['objective']:.4f}. On the fit "
            f"sample ({plain['rows']:,} windows): max/min {plain['ours_max_min']:.3f} against {plain['max_min']:.2f} "
            f"for plain faiss k-means, objective {plain['ours_objective']:.4f} against {plain['objective']:.4f}.")


def write_cards(cards: list[Card], clusters: dict[str, Any], out: Path) -> dict[str, Any]:
    for card in cards:
        (out / f"{card.name}.json").write_text(json.dumps(card.model_dump(), indent=2, ensure_ascii=False) + "\n")
        (out / f"{card.name}.md").write_text(render_card(card, len(cards)))
    (out / "index.md").write_text(render_index(cards, clusters))
    (out / "card.schema.json").write_text(json.dumps(Card.model_json_schema(), indent=2) + "\n")
    return {"cards": len(cards)}
