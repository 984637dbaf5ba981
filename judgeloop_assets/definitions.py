"""The code location: every asset of the loop, its checks, sensors and the resource they share."""

import dagster as dg

from judgeloop.stack import quick_exit
from judgeloop_assets.assets.alignment import aligned_judge, sme_labels
from judgeloop_assets.assets.dataset import eval_dataset
from judgeloop_assets.assets.judge import base_judge
from judgeloop_assets.assets.labeling import labeling_session
from judgeloop_assets.assets.live_agreement import live_agreement_asset
from judgeloop_assets.assets.prompts import agent_prompt, optimized_prompt
from judgeloop_assets.assets.traces import tagged_traces
from judgeloop.run_names import FOUNDATION_JOB, RESOURCE_KEY, run_limit_tags
from judgeloop_assets.resources import JudgeloopConfig
from judgeloop.settings import load_settings
from sensors.live_agreement_sensor import build_live_agreement_sensors, live_agreement_job
from sensors.new_traffic_sensor import build_new_traffic_sensor, traffic_job
from sensors.sme_labels_sensor import build_sme_labels_sensor, realign_job

quick_exit.install()  # every process that loads the code location: run workers above all

FOUNDATION = [base_judge, tagged_traces, eval_dataset, labeling_session]
ALIGNMENT = [sme_labels, live_agreement_asset, aligned_judge]
AGENT = [agent_prompt, optimized_prompt]
ALL_ASSETS = [*FOUNDATION, *ALIGNMENT, *AGENT]

settings = load_settings()  # read once, when the code location loads

defs = dg.Definitions(
    assets=ALL_ASSETS,
    resources={RESOURCE_KEY: JudgeloopConfig()},
    jobs=[
        dg.define_asset_job(
            FOUNDATION_JOB, selection=dg.AssetSelection.assets(*FOUNDATION, agent_prompt), tags=run_limit_tags()
        ),
        realign_job,
        traffic_job,
        live_agreement_job,
    ],
    sensors=[
        build_sme_labels_sensor(settings),
        build_new_traffic_sensor(settings),
        *build_live_agreement_sensors(settings),
    ],
    # In-process: the multiprocess executor was 3x slower here and its parallel steps raced
    # MLflow's schema creation on a fresh sqlite store.
    executor=dg.in_process_executor,
)
