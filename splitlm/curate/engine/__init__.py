"""Execution engines for the per-part maps of the curation pipeline (`local` or `ray`).

The pipeline is a list of per-group maps and named barriers (see `splitlm.schemas.layout`):
ingest, MinHash signatures and windowing run once per file group, anywhere and in any order,
each writing its own parts into the stage's scratch folder; the barriers (duplicate ids, LSH
band grouping, global window ids) read those parts in group order. The local engine runs the
very same task functions in this process, so both engines write the same bytes.
"""
