"""Stage: the language the bot speaks (issue 14): 「English」, 「やさしい にほんご」, 「日本語」 at any time.

A typed language name (`bot.i18n.typed_language`, in any language and state) and the language
buttons (`*|lang|<code>`, offered by ヘルプ, by 言語 / Language in the rich menu, and by a language
command's question `*|lang|`) are one postback action valid at any step, even while the user waits for
staff. Choosing one switches the turn's language (`bot.i18n.switch`), keeps it on the conversation and
on the user's upcoming bookings (their pushes and reminders speak it), says so in the new language and
asks the question in hand again, with every answer given so far kept.

LINE's profile language (`Inbound(kind="profile")`, asked once after the first greeting, see
`Outcome.ask_profile`) switches the same way unless the user chose a language themselves, and greets
again in it instead of saying that the language changed.
"""

from __future__ import annotations

from bot import i18n
from bot.dialog import texts as T
from bot.dialog.buttons import LANGUAGE_ACTION, language_options
from bot.dialog.conversation import booking_ref
from bot.dialog.core import Action, Stage, Turn
from bot.dialog.replies import Ask, Text
from bot.dialog.stages.handoff import paused_reminder
from bot.dialog.stages.my_bookings import upcoming

def ask_language(turn: Turn) -> None:
    """Which language? (言語 / Language): the buttons; the question in hand stays as it is."""
    turn.say(Ask(T.LANGUAGE_ASK, language_options(turn.conv.lang)))


def use_language(turn: Turn, lang: str) -> None:
    """Speak `lang` from now on: the conversation and the upcoming bookings keep it."""
    turn.conv.lang = lang
    turn.conv.profile_asked = True
    i18n.switch(lang)
    for booking in upcoming(turn):
        if booking.get("lang", i18n.DEFAULT) != lang:
            turn.bookings.update(booking_ref(booking), {"lang": lang})


def _again(turn: Turn) -> None:
    """The question in hand once more, now in the new language (a waiting user: when staff answer)."""
    if turn.conv.paused:
        return turn.say(paused_reminder(turn))
    turn.reprompt()


def choose_language(turn: Turn, value: str) -> None:
    """A language button or a typed language name; "" asks which."""
    if not value:
        if turn.conv.quiet:
            return  # staff answer in LINE Official Account Manager: the bot says nothing
        return ask_language(turn)
    if value not in i18n.LANGUAGES:
        return ask_language(turn)  # a forged or garbled button
    turn.conv.lang_chosen = True
    use_language(turn, value)
    if turn.conv.quiet:
        return
    turn.say(Text(T.LANGUAGE_SET))
    _again(turn)


def profile_language(turn: Turn, tag: str) -> None:
    """LINE's profile language, asked after the first greeting: greet again in it where it is another
    language and the user has not chosen one; say nothing otherwise (the first answer stands)."""
    lang = i18n.from_tag(tag)
    turn.conv.profile_asked = True
    if lang is None or turn.conv.lang_chosen or lang == turn.conv.lang:
        return
    use_language(turn, lang)
    turn.dialog.registry.hooks["greet"](turn)
    _again(turn)


STAGE = Stage(
    "language",
    actions={LANGUAGE_ACTION: Action(choose_language, even_paused=True)},
    hooks={"profile": profile_language},
)
