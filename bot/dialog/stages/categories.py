"""Stage: Sakata's category question (one of five, or none) and the second half of category 3."""

from __future__ import annotations

from bot.dialog import texts as T
from bot.dialog.buttons import command_option
from bot.dialog.core import Handlers, Stage, Step, Turn
from bot.dialog.replies import Ask
from bot.dialog.stages.eligibility import reject
from bot.profiles import OfficeProfile


def category(turn: Turn, category_id: str, *, japanese: bool = False):
    """The office's category `category_id` as the user reads it (`japanese`: as staff do); None when
    unknown or the office has no categories."""
    if not turn.conv.office:
        return None
    profile = turn.dialog.offices[turn.conv.office] if japanese else turn.profile
    categories = profile.eligibility.categories
    if not categories:
        return None
    return next((item for item in categories.items if item.id == category_id), None)


def _needs_detail(turn: Turn) -> bool:
    chosen = category(turn, turn.conv.answers.get("category", ""))
    return bool(chosen and chosen.follow_up)


def _ask_category(turn: Turn) -> None:
    categories = turn.profile.eligibility.categories
    assert categories is not None
    total = len(turn.profile.eligibility.questions) + 1
    listing = "\n".join(f"{i}. {item.text}" for i, item in enumerate(categories.items, start=1))
    options = [turn.option(item.label, "c", item.id) for item in categories.items]
    options.append(turn.option(categories.none_label, "c", "none"))
    text = T.CHECK_PROGRESS.format(index=total, total=total) + categories.text + "\n" + listing
    turn.say(Ask(text, tuple(options + [command_option("back")])))


def _choose_category(turn: Turn, action: str, value: str) -> None:
    if action == "c" and value == "none":
        turn.conv.answers["category"] = "none"
        return reject(turn, "category")
    if action == "c" and category(turn, value) is not None:
        turn.conv.answers["category"] = value
        turn.conv.answers.pop("category_detail", None)
        return turn.go("advance")
    turn.not_understood()


def _ask_detail(turn: Turn) -> None:
    chosen = category(turn, turn.conv.answers.get("category", ""))
    assert chosen is not None and chosen.follow_up is not None
    follow = chosen.follow_up
    options = (turn.option(follow.yes_label, "c", "yes"), turn.option(follow.no_label, "c", "no"))
    turn.say(Ask(follow.text, options + (command_option("back"),)))


def _choose_detail(turn: Turn, action: str, value: str) -> None:
    if action != "c" or value not in ("yes", "no"):
        return turn.not_understood()
    turn.conv.answers["category_detail"] = value
    if value == "yes":
        return turn.go("advance")
    reject(turn, "category_detail")


def _why_not(turn: Turn, failed: str) -> tuple[str, str] | None:
    if failed not in ("category", "category_detail"):
        return None
    chosen = category(turn, turn.conv.answers.get("category", ""))
    if failed == "category_detail" and chosen and chosen.follow_up:
        return chosen.follow_up.ineligible.reason, chosen.follow_up.ineligible.instead
    categories = turn.profile.eligibility.categories
    assert categories is not None
    return categories.ineligible.reason, categories.ineligible.instead


def _steps(profile: OfficeProfile) -> list[Step]:
    if not profile.eligibility.categories:
        return []
    return [
        Step("choosing_category", Handlers(ask=_ask_category, choose=_choose_category), rejects=True),
        Step("asking_category_detail", Handlers(ask=_ask_detail, choose=_choose_detail), when=_needs_detail, rejects=True),
    ]


STAGE = Stage("categories", steps=_steps, why_not=_why_not)
