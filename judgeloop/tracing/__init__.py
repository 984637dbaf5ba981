"""Traffic: the agent, production traces (logged, imported from files, or the demo's), scored and tagged, and the evaluation dataset."""
