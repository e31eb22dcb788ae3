"""The stages of the conversation, one module each, registered here in the order a booking meets them.

Adding a stage (or a new kind of office question) is writing its module, which declares a `Stage`
(`bot.dialog.core`): its states and their handlers, the steps it adds to an office's booking, its
commands, any-time postback actions and hooks; and adding that `STAGE` to the list below.
"""

from bot.dialog.core import Registry
from bot.dialog.stages import (
    booking,
    categories,
    consent,
    eligibility,
    erase,
    handoff,
    identify,
    language,
    menu,
    my_bookings,
    proposal,
    reschedule,
    slots,
)

REGISTRY = Registry(
    [
        menu.STAGE,  # idle, the greeting, the office choice
        identify.STAGE,  # name, 求職番号, email, phone, topic, interpreter
        eligibility.STAGE,  # the office's yes/no questions; ineligible
        categories.STAGE,  # Sakata's categories and the second half of category 3
        slots.STAGE,  # the slot picker, typed dates
        booking.STAGE,  # terms, the confirmation card, changing an item, booking
        my_bookings.STAGE,  # the booking list, cancelling
        reschedule.STAGE,  # changing the date of a booking
        erase.STAGE,  # data deletion, blocking the bot
        consent.STAGE,  # re-consent to new terms, the reminder opt-in (buttons of pushes)
        proposal.STAGE,  # the answer to another time staff proposed for a request (buttons of a push)
        handoff.STAGE,  # talking to staff, waiting for them
        language.STAGE,  # 「English」「やさしい にほんご」「日本語」 at any time; LINE's profile language
    ]
)
