"""Routed zero-shot QA (`train zeroshot`): tasks and templates, data, scoring, report."""
