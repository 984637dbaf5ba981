"""FeedbackQA (real questions, answer passages and expert ratings with reasons) as demo data."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from judgeloop.settings import FeedbackType, Settings

RATING_ORDER = ["Bad", "Could be Improved", "Acceptable", "Excellent"]


@dataclass(frozen=True)
class Rating:
    reviewer: str
    rating: str
    reason: str


@dataclass(frozen=True)
class Item:
    key: str
    question: str
    passage: str
    ratings: tuple[Rating, ...] = field(default_factory=tuple)


def load_items(root: Path, domain: str = "WHO", limit: int | None = None) -> list[Item]:
    path = Path(root) / domain / "feedback_valid.json"
    if not path.exists():
        raise FileNotFoundError(f"FeedbackQA file {path} not found: set JUDGELOOP_FEEDBACKQA_PATH")
    items = []
    for index, raw in enumerate(json.loads(path.read_text())):
        passage = raw["passage"]["reference"]["section_content"]
        ratings = tuple(
            Rating(reviewer=f"rater-{pos + 1}", rating=rating, reason=reason)
            for pos, (rating, reason) in enumerate(zip(raw["rating"], raw["feedback"]))
        )
        items.append(Item(key=f"{domain}-{index}", question=raw["question"].strip(), passage=passage.strip(), ratings=ratings))
        if limit and len(items) >= limit:
            break
    return items


def to_scale(rating: str, settings: Settings):
    """Map a FeedbackQA rating onto the judge's configured scale."""
    position = RATING_ORDER.index(rating)
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return position >= 2
    if settings.feedback_type == FeedbackType.CATEGORICAL:
        if len(settings.categories) != len(RATING_ORDER):
            raise ValueError("FeedbackQA maps onto exactly four categories")
        return settings.categories[position]
    span = settings.scale_max - settings.scale_min
    return settings.scale_min + round(position * span / (len(RATING_ORDER) - 1))
