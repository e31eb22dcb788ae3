"""The conversation: a transitions machine per office profile; turns produce replies, never send."""

from bot.dialog.conversation import Bookings, Claim, Conversation, Inbound, Moved, Outcome
from bot.dialog.engine import Dialog
from bot.dialog.replies import (
    Ask,
    BookedCard,
    ConfirmCard,
    Link,
    Option,
    Reply,
    SlotDay,
    SlotPicker,
    StaffNotice,
    TermsCard,
    Text,
    options_of,
    plain_text,
)
from bot.dialog.stages.slots import parse_day

__all__ = [
    "Ask",
    "BookedCard",
    "Bookings",
    "Claim",
    "ConfirmCard",
    "Conversation",
    "Dialog",
    "Inbound",
    "Link",
    "Moved",
    "Option",
    "Outcome",
    "Reply",
    "SlotDay",
    "SlotPicker",
    "StaffNotice",
    "TermsCard",
    "Text",
    "options_of",
    "parse_day",
    "plain_text",
]
