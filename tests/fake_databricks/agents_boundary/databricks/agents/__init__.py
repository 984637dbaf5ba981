"""Test stand-in for the boundary MLflow calls in ``databricks-agents`` (Unity Catalog datasets only).

Only on the path of tests that run against the fake workspace; the real package is the
``databricks`` extra and is never run against a fake.
"""
