"""Data contracts: everything that crosses a module boundary, and nothing else does.

- `layout`: where every folder and file of a run (RUN) and a split run (TRAIN) lives.
- `tables`: Arrow schemas of every Parquet file a stage writes, checked when read.
- `tokens`: the memory-mapped token-array format of windows and shards.
- `manifest`: the per-stage manifest (config, algorithm version, fingerprints, counts, part hashes).
- `run`: the run summary `RUN/manifest.json`, what `curate` hands to `train`.
- `router`: the router spec saved next to the router's safetensors.
- `card`: the cluster card.
- `losses`: the losses table of a split run.

This package imports nothing of splitlm but `errors` and `core`.
"""
