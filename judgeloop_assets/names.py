"""Names other processes use to address this code location (the CLI launches jobs by them)."""

CODE_LOCATION = "judgeloop"  # also in pyproject.toml [tool.dagster] and workspace.yaml
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a Definitions object
FOUNDATION_JOB = "judgeloop_foundation"
REALIGN_JOB = "realign_judge"
