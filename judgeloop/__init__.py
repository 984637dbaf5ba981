"""judgeloop core: plain functions over MLflow that keep an LLM judge aligned with domain experts.

Nothing in this package imports dagster; every function takes settings and identifiers and
returns plain values, so it can be used from a notebook as well as from the asset graph.
"""
