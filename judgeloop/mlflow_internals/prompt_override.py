"""Serve a candidate template for one registry prompt, process-wide (MLflow 3.17.2 internals).

Swapping ``PromptVersion.template`` is the technique ``optimize_prompts`` itself uses for GEPA's
candidates: any agent that loads its prompt through the registry then runs with the candidate,
whatever its signature. It reaches past MLflow's public API, so it lives here alone;
``tests/test_mlflow_schema.py`` checks that the member is still a property.
"""

from contextlib import contextmanager


@contextmanager
def prompt_template(name: str, template: str):
    """Make every registry load of prompt ``name`` in this process return ``template``.

    The same technique ``optimize_prompts`` uses for GEPA's candidates: it works for any agent
    that loads its prompt through the registry, whatever its signature.
    """
    from mlflow.entities.model_registry import PromptVersion

    original = PromptVersion.template

    def patched(self):
        return template if self.name == name else original.fget(self)

    PromptVersion.template = property(patched)
    try:
        yield
    finally:
        PromptVersion.template = original
