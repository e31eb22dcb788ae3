"""Pydantic models of an office profile (office_profiles/<id>.yaml).

Everything an office decides lives here as data: adding an office is adding a file. Models are frozen
and forbid unknown keys, so a typo in a profile fails loudly with the field path.
"""

from __future__ import annotations

import re
from datetime import date, time
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

# LINE quick-reply labels are at most 20 characters; every button label in a profile must fit.
LABEL_MAX = 20

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=LABEL_MAX)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_JA = {"mon": "月", "tue": "火", "wed": "水", "thu": "木", "fri": "金", "sat": "土", "sun": "日"}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_hhmm(value: object) -> object:
    """Accept "9:30" / "09:30" strings (and YAML's sexagesimal ints, e.g. 9:30 -> 570) as times."""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 9:30 as 570 (base 60); treat it as minutes.
        hours, minutes = divmod(value, 60)
        if 0 <= hours < 24:
            return time(hours, minutes)
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(part) for part in value.strip().split(":"))
        return time(hours, minutes)
    return value


HHMM = Annotated[time, Field(description="a time of day, HH:MM")]


class Contact(Model):
    """How a job seeker reaches the office. An empty phone is allowed but warned about."""

    phone: str | None = Field(default=None, pattern=r"^0\d{1,4}-\d{1,4}-\d{3,4}$")
    phone_note: str | None = None  # e.g. Izumo's extension "41#"
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    email_subject: str | None = None
    address: str | None = None
    department: str | None = None


class Hours(Model):
    """Opening hours on open days; `stated: false` marks the project default (8:30-17:15)."""

    open: HHMM
    close: HHMM
    stated: bool = True

    _times = field_validator("open", "close", mode="before")(_parse_hhmm)

    @model_validator(mode="after")
    def _order(self) -> "Hours":
        if self.open >= self.close:
            raise ValueError("open must be before close")
        return self


class ClosedRange(Model):
    """Days the office is closed beyond weekends, national holidays and 12/29-1/3."""

    start: date
    end: date | None = None  # inclusive; a single day when omitted
    reason: Text = "休業日"

    @model_validator(mode="after")
    def _order(self) -> "ClosedRange":
        if self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class Schedule(Model):
    """The slot grid: start times per weekday, session length, capacity per slot."""

    minutes: int = Field(gt=0, le=240)
    slots: dict[str, list[HHMM]]
    capacity: int = Field(default=1, ge=1, le=100)
    closed: list[ClosedRange] = []

    @field_validator("slots", mode="before")
    @classmethod
    def _slot_times(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                key: [_parse_hhmm(item) for item in items] if isinstance(items, list) else items
                for key, items in value.items()
            }
        return value

    @field_validator("slots", mode="after")
    @classmethod
    def _weekdays(cls, value: dict[str, list[time]]) -> dict[str, list[time]]:
        for key, starts in value.items():
            if key not in WEEKDAYS:
                raise ValueError(f"unknown weekday {key!r}; use one of {', '.join(WEEKDAYS)}")
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise ValueError(f"{key}: start times must be increasing and distinct")
        if not any(value.values()):
            raise ValueError("no slot on any weekday")
        return value


class DeadlineKind(str, Enum):
    business_days = "business_days"
    calendar_days = "calendar_days"


class Deadline(Model):
    """Booking closes at the office's closing time on the Nth (business or calendar) day before."""

    kind: DeadlineKind
    days: int = Field(ge=0, le=60)
    text: Text  # how the rule is said to the user, e.g. "相談希望日の2営業日前まで"


class Booking(Model):
    deadline: Deadline
    window_months: int = Field(default=1, ge=1, le=12)
    max_upcoming: int = Field(default=1, ge=1, le=10)
    # Izumo: "other times by consultation" -> a choice that hands off to staff.
    other_times_handoff: bool = False


IdentifyField = Literal["name", "job_seeker_number", "email", "phone"]


class Identify(Model):
    """What the office asks at booking beyond the slot."""

    fields: list[IdentifyField]
    topics: list[Label] = []  # consultation topics; asked only when there are several
    ask_interpreter: bool = True
    # The phone question when the office asks for a particular number (Izumo: the one registered with
    # Hello Work); None asks for a contact number (texts.ASK_PHONE).
    phone_question: Text | None = None

    @field_validator("fields")
    @classmethod
    def _required(cls, value: list[str]) -> list[str]:
        for needed in ("name", "job_seeker_number"):
            if needed not in value:
                raise ValueError(f"{needed} is asked by every office")
        if len(set(value)) != len(value):
            raise ValueError("a field is listed twice")
        return value


class Choice(Model):
    id: Ident
    label: Label
    ok: bool


class Ineligible(Model):
    """What the user is told when a condition fails: why, and what to do instead."""

    reason: Text
    instead: Text


class Question(Model):
    """One eligibility condition, asked with buttons; `ok` marks the answers that qualify."""

    id: Ident
    text: Text
    choices: list[Choice] = Field(min_length=2, max_length=13)
    ineligible: Ineligible

    @model_validator(mode="after")
    def _choices(self) -> "Question":
        ids = [choice.id for choice in self.choices]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate choice ids")
        if not any(choice.ok for choice in self.choices):
            raise ValueError("no choice qualifies")
        if all(choice.ok for choice in self.choices):
            raise ValueError("every choice qualifies: the question checks nothing")
        return self


class FollowUp(Model):
    """The second half of a category that needs two conditions (Sakata's category 3)."""

    text: Text
    yes_label: Label = "はい"
    no_label: Label = "いいえ"
    ineligible: Ineligible


class Category(Model):
    id: Ident
    label: Label
    text: Text  # the full condition as the terms state it
    follow_up: FollowUp | None = None


class Categories(Model):
    """Special eligibility categories: at least one must hold (Sakata, terms art. 2 (1))."""

    text: Text
    none_label: Label = "どれにも当てはまらない"
    items: list[Category] = Field(min_length=1, max_length=12)
    ineligible: Ineligible

    @model_validator(mode="after")
    def _unique(self) -> "Categories":
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate category ids")
        return self


class Eligibility(Model):
    questions: list[Question] = Field(min_length=1)
    categories: Categories | None = None

    @model_validator(mode="after")
    def _unique(self) -> "Eligibility":
        ids = [question.id for question in self.questions]
        duplicates = sorted({qid for qid in ids if ids.count(qid) > 1})
        if duplicates:
            raise ValueError(f"duplicate question ids: {', '.join(duplicates)}")
        return self


class TermsChange(str, Enum):
    """How the office's terms change; only `reply` makes a booking wait (bot/staff/aftercare.py Reconsent)."""

    reply = "reply"  # new terms are emailed; replying is consent, and the booking waits for it (Noto)
    notify = "notify"  # changed without consent; users are told the change, the new text and its date
    implied = "implied"  # may change without consent; using the service after a change is consent


class Rule(Model):
    """A rule told before consent, with the words of the office's own documents it comes from.

    `source` is one or more verbatim quotes from the office's seed document (whitespace aside);
    tests/test_profiles_vs_seeds.py checks that each occurs there, so a rule the documents do not
    contain cannot be added without a quote that fails.
    """

    text: Text
    source: list[Text] = Field(min_length=1)

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Terms(Model):
    """The office's terms of use: the full text (a file beside the profile) and our short summary."""

    title: Text
    version: date  # the latest enactment or revision date; consent records keep it
    history: list[date] = Field(min_length=1)  # enactment and revision dates, oldest first
    version_label: Text  # the dates as the document prints them
    source: Text  # where the text comes from
    full_text: Text  # path of the full text, relative to the profiles directory
    summary: Text
    rules: list[Rule] = Field(min_length=1)  # told before consent, each with its source quote
    change: TermsChange
    court: Text

    @model_validator(mode="after")
    def _history(self) -> "Terms":
        if self.history != sorted(self.history):
            raise ValueError("history must be oldest first")
        if self.history[-1] != self.version:
            raise ValueError("version must be the last date in history")
        return self


class CancelChannel(str, Enum):
    phone = "phone"
    email = "email"


class Cancellation(Model):
    channels: list[CancelChannel] = Field(min_length=1)
    same_day: list[CancelChannel] = Field(min_length=1)  # channels accepted on the day itself
    no_show_minutes: int = Field(default=10, ge=1, le=60)
    text: Text


class AfterBooking(Model):
    """What happens after the booking at this office, and how to prepare."""

    steps: list[Text] = Field(min_length=1)
    checklist: list[Text] = Field(min_length=1)
    # The office adjusts the schedule and confirms the booking (all five offices: OFFICES.md "After
    # booking"): the bot's booking is a request until then.
    confirmed_by_office: bool = False
    # Business days the office takes to answer a request; past them (or at noon of the last business
    # day before the consultation) staff get a `request_overdue` notice. None: only the noon rule.
    reply_business_days: int | None = Field(default=None, ge=0, le=30)
    # Reasons staff pick from when declining a request (they can also type one).
    decline_reasons: list[Text] = []


class StaffNotify(Model):
    """Where staff notices of this office go: a Slack incoming webhook and/or a LINE group."""

    # The environment variable holding the Slack webhook URL (the URL is a secret: never in a profile).
    slack_webhook_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = "SLACK_WEBHOOK_URL"
    line_group_id: Annotated[str, StringConstraints(pattern=r"^[CR][0-9a-f]{32}$")] | None = None


class Staff(Model):
    """The staff side of an office: notices, reminders, the no-show limit."""

    notify: StaffNotify = StaffNotify()
    reminder_time: HHMM = time(17, 0)  # the reminder goes out the day before, at this time
    no_show_limit: int = Field(default=2, ge=1, le=10)  # past it, self-service booking stops
    console_url: str | None = None  # base URL of the staff console, for links in notices

    _times = field_validator("reminder_time", mode="before")(_parse_hhmm)


class OfficeProfile(Model):
    """One office. `id` must equal the file name."""

    id: Ident
    name: Text
    # The office's button (choosing an office), where short_name is longer than a label may be: English
    # "Mothers Hello Work Hamamatsu" (28 characters) reads in full in every sentence, "Mothers HW Hamamatsu"
    # on its button. Unset: short_name. (Before short_name: its check reads it.)
    label: Label | None = None
    short_name: Text  # the office as named in a sentence; also its button label unless `label` is set
    video_tool: Text
    length_text: Text  # the session length as told to the user
    audience: Text | None = None
    notes: list[Text] = []
    contact: Contact
    hours: Hours
    schedule: Schedule
    booking: Booking
    identify: Identify
    eligibility: Eligibility
    terms: Terms
    after_booking: AfterBooking
    cancellation: Cancellation
    staff: Staff = Staff()

    @property
    def button_label(self) -> str:
        """What the office's button says (at most LINE's 20 characters)."""
        return self.label or self.short_name

    @field_validator("short_name")
    @classmethod
    def _short_name_fits_a_button(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("label", "") is None and len(value) > LABEL_MAX:  # (a label that failed: no data)
            raise ValueError(
                f"{value!r} is longer than {LABEL_MAX} characters, the office's button label: shorten it or "
                f"add a `label` of at most {LABEL_MAX}"
            )
        return value

    @model_validator(mode="after")
    def _slots_fit(self) -> "OfficeProfile":
        """Every slot lies inside opening hours and ends before the next one starts."""
        open_min = self.hours.open.hour * 60 + self.hours.open.minute
        close_min = self.hours.close.hour * 60 + self.hours.close.minute
        length = self.schedule.minutes
        for day, starts in self.schedule.slots.items():
            minutes = [start.hour * 60 + start.minute for start in starts]
            for index, start in enumerate(minutes):
                label = starts[index].strftime("%H:%M")
                if start < open_min or start + length > close_min:
                    raise ValueError(
                        f"schedule.slots.{day}.{index}: {label} + {length} min is outside "
                        f"office hours {self.hours.open:%H:%M}-{self.hours.close:%H:%M}"
                    )
                if index + 1 < len(minutes) and start + length > minutes[index + 1]:
                    raise ValueError(
                        f"schedule.slots.{day}.{index}: {label} + {length} min overlaps the next "
                        f"slot {starts[index + 1]:%H:%M}"
                    )
        return self

