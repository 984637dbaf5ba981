"""The code location: every asset of the loop, its checks, sensors and the resource they share."""

import dagster as dg

from judgeloop_assets.assets.dataset import eval_dataset
from judgeloop_assets.assets.judge import base_judge
from judgeloop_assets.assets.labeling import labeling_session
from judgeloop_assets.assets.traces import tagged_traces
from judgeloop_assets.resources import JudgeloopConfig

FOUNDATION = [base_judge, tagged_traces, eval_dataset, labeling_session]

defs = dg.Definitions(
    assets=FOUNDATION,
    resources={"judgeloop": JudgeloopConfig()},
    jobs=[dg.define_asset_job("judgeloop_foundation", selection=dg.AssetSelection.assets(*FOUNDATION))],
    # In-process: the multiprocess executor was 3x slower here and its parallel steps raced
    # MLflow's schema creation on a fresh sqlite store.
    executor=dg.in_process_executor,
)
