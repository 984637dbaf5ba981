"""FeedbackQA (real questions, answer passages and expert ratings with reasons) as demo data."""

import json
from dataclasses import dataclass, field
from importlib import resources
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


def bundled_root():
    """The FeedbackQA sample shipped inside the package (WHO and part of CDC, Apache-2.0).

    Read through importlib.resources, so an installed (non-editable) package finds it too.
    """
    return resources.files("judgeloop.data") / "feedbackqa"


def bundled_domains() -> list[str]:
    return sorted(entry.name for entry in bundled_root().iterdir() if (entry / "feedback_valid.json").is_file())


def load_items(root=None, domain: str = "WHO", limit: int | None = None) -> list[Item]:
    """Items of one domain from ``root`` (a folder of ``<domain>/feedback_valid.json``; default:
    the shipped sample)."""
    base = bundled_root() if root is None else Path(root)
    path = base / domain / "feedback_valid.json"
    if not path.is_file():
        where = f"{root}" if root is not None else f"the shipped sample (domains: {', '.join(bundled_domains())})"
        raise FileNotFoundError(
            f"FeedbackQA domain {domain!r} not found in {where}: expected {domain}/feedback_valid.json "
            "(JUDGELOOP_FEEDBACKQA_PATH points at your own copy, JUDGELOOP_DEMO_DOMAIN picks the domain)"
        )
    items = []
    for index, raw in enumerate(json.loads(path.read_text(encoding="utf-8"))):
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
