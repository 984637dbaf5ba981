"""judgeloop's Dagster code location: assets, checks and resources over the judgeloop core."""
