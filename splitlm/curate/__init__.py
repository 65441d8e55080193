"""Corpus curation: ingest -> dedup -> windows -> embed -> kmeans -> route -> shards -> cards -> inspect."""
