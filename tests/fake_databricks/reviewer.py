"""What an SME does in the Review App, done against the fake workspace: answer the queue's
question on a trace (HUMAN feedback named like the question, with the reviewer's identity) and
mark the queue item complete with the reviewer's own token (the fake records them as completed_by)."""

import requests

from tests.fake_databricks.running import REVIEWER_TOKENS


def queue_items(url: str, token: str, experiment_id: str, queue_id: str) -> list[dict]:
    base = f"{url}/api/2.0/managed-evals/experiments/{experiment_id}/reviewQueues/{queue_id}/items"
    items, page_token = [], None
    while True:
        page = requests.get(base, params={"page_token": page_token} if page_token else {},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
        items += page.get("review_queue_items", [])
        page_token = page.get("next_page_token")
        if not page_token:
            return items


def answer(url: str, experiment_id: str, queue_id: str, trace_id: str, name: str, value, reviewer_token: str,
           comment: str = "") -> str:
    from judgeloop.sme_labels.labels import log_label

    assessment_id = log_label(trace_id, name, value, REVIEWER_TOKENS[reviewer_token], comment or None)
    set_status(url, experiment_id, queue_id, trace_id, "COMPLETE", reviewer_token)
    return assessment_id


def set_status(url: str, experiment_id: str, queue_id: str, trace_id: str, status: str, token: str) -> dict:
    item = next(i for i in queue_items(url, token, experiment_id, queue_id) if i["v4_trace"]["trace_id"] == trace_id)
    response = requests.patch(
        f"{url}/api/2.0/managed-evals/{item['name']}", params={"update_mask": "status"},
        json={"name": item["name"], "status": status}, headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )
    response.raise_for_status()
    return response.json()
