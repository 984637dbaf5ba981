"""judgeloop core: plain functions over MLflow that keep an LLM judge aligned with domain experts.

Nothing in this package imports dagster outside the command line (``cli``, ``commands/``);
every function takes settings and identifiers and returns plain values, so it can be used from
a notebook as well as from the asset graph (tests/test_layers.py holds it to that).

One subpackage per stage of the loop:
- ``stack``: the MLflow store this process connects to, the local servers, the running stack;
- ``tracing``: the agent and production traffic, scored, tagged, made into the eval dataset;
- ``sme_labels``: where experts label, which labels count and which wait, label files;
- ``judging``: judge versions and stored scores, agreement, MemAlign alignment, the gate;
- ``prompt_optimization``: the registry prompt and GEPA;
- ``model_calls``: providers, limits, counts and cost of every LLM call;
- ``workspace``: what differs between a local store and Databricks;
- ``mlflow_internals``: everything that reaches past MLflow's public API (contract-tested);
- ``stand_in_models``: the offline ``fake:/`` models and models running on this machine.
``settings`` decides where things run; ``run_names`` names the jobs and tags the layers share.
"""
