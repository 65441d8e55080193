"""Where everything lives: every folder and file of a curated run (RUN) and of a split run (TRAIN).

One cluster-name rule for both: `cluster-XX`, zero-padded to at least two digits and to as many
as the largest id of the run needs (`cluster-007` from K = 101 on).

RUN/                         (`curate cluster --out RUN`)
  manifest.json              the run summary (`RunSummary`): every document and token accounted for
  documents/ dedup/ windows/ embeddings/ clusters/ shards/ cards/   one folder per stage, each
                             complete when its manifest.json exists (`StageManifest`, whose `parts`
                             lists every file of the stage with its sha256)
  documents/part-NNNNN.parquet, quarantine-NNNNN.parquet   numbered over the file groups in order;
                             `counts["groups"]` gives each group's [first, last) documents part
  dedup/duplicates-GGGGG.parquet   one per file group: the group's documents found duplicate
  windows/tokens.json + tokens.bin, or + tokens-00000.bin, tokens-00001.bin, ... (`--part-mb` each;
                             the header lists every part's rows and sha256, `splitlm.schemas.tokens`)
  windows/windows-NNNNN.parquet    provenance, row i = window i (global ids, in group order)
  embeddings/vectors.npy, or vectors-00000.npy, vectors-00001.npy, ... (`--part-mb` each, listed
                             under `counts["vector_parts"]`); `load_vectors` reads either as one array
  clusters/router.json + router.safetensors    the router (`RouterSpec` + centroids_KD, biases_K)
  shards/cluster-XX/{train,val}/   tokens.bin + tokens.json + index.parquet (a parted token array
                             reads the same way: `TokenArray` and the train side's Datasets take both)
  inspect/                   `curate inspect`      export/<format>/   `curate export`
  .work/<stage>/<key>/       resumable scratch, removed when the stage completes: `group-GGGGG/`
                             (one per file group: its parts, then `done.json`) for documents, dedup and
                             windows; `part-NNNNN.npy` (every `--embed-part-size` windows) for embeddings

A file group is a run of consecutive input files of about `--part-mb` MB (`splitlm.curate.engine`):
the unit of work of ingest, MinHash signatures and windowing, local or one Ray task each. A rerun
redoes only the groups and embedding parts with no finished result under the current key (config +
input); the barriers (duplicate ids, LSH band grouping, global window ids) then rebuild the stage
folder from them. Every `part-mb` default is 256 MB; a stage that fits in one part keeps the
one-file names (`tokens.bin`, `vectors.npy`).
TRAIN/                       (`train split --out TRAIN`)
  split.json                 the split config; pretrain/ and branches/split-<tokens>/cluster-XX/ job folders
  plan.json                  every job, its budget and what it waits for (`JobPlan`)
  losses.csv + losses.parquet (`LOSSES`)          routed/   `train eval`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGES = ("documents", "dedup", "windows", "embeddings", "clusters", "shards", "cards")
SPLITS = ("train", "val")


def cluster_number(cluster: int, k: int) -> str:
    """The cluster's number as every file, table and metric prints it: 2 digits, 3 from K = 101."""
    return f"{cluster:0{max(2, len(str(k - 1)))}d}"


def cluster_name(cluster: int, k: int) -> str:
    return f"cluster-{cluster_number(cluster, k)}"


@dataclass(frozen=True)
class _Folder:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))


@dataclass(frozen=True)
class RunLayout(_Folder):
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def stage(self, name: str) -> Path:
        return self.root / name

    def stage_manifest(self, name: str) -> Path:
        return self.root / name / "manifest.json"

    @property
    def router_spec(self) -> Path:
        return self.root / "clusters" / "router.json"

    @property
    def router_tensors(self) -> Path:
        return self.root / "clusters" / "router.safetensors"

    @property
    def vectors(self) -> Path:
        return self.root / "embeddings" / "vectors.npy"

    def shard(self, cluster: int, k: int, split: str) -> Path:
        return self.root / "shards" / cluster_name(cluster, k) / split

    def card(self, cluster: int, k: int, suffix: str = "json") -> Path:
        return self.root / "cards" / f"{cluster_name(cluster, k)}.{suffix}"

    @property
    def inspect(self) -> Path:
        return self.root / "inspect"

    def export(self, fmt: str) -> Path:
        return self.root / "export" / fmt


def export_file(cluster: int, k: int, split: str, suffix: str) -> str:
    """The file name `curate export` gives one cluster's split, e.g. `cluster-03-train.parquet`."""
    return f"{cluster_name(cluster, k)}-{split}.{suffix}"


ROUTER_DIR = "router"  # TRAIN/router/: the run's router, copied by `train split` so TRAIN stands alone
ROUTER_RECORD = "copied.json"  # in it: what was copied, with sha256


@dataclass(frozen=True)
class TrainLayout(_Folder):
    @property
    def config(self) -> Path:
        return self.root / "split.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def pretrain(self) -> Path:
        return self.root / "pretrain"

    def branch(self, split_tokens: int, cluster: int, k: int) -> Path:
        return self.root / "branches" / f"split-{split_tokens:012d}" / cluster_name(cluster, k)

    def split_points(self) -> list[int]:
        """Split points (tokens) that have a branch folder."""
        return sorted(int(p.name.split("-")[1]) for p in (self.root / "branches").glob("split-*"))

    @property
    def losses_csv(self) -> Path:
        return self.root / "losses.csv"

    @property
    def losses_parquet(self) -> Path:
        return self.root / "losses.parquet"

    @property
    def routed(self) -> Path:
        return self.root / "routed"
