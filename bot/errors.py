"""The project's exceptions, rooted at one class.

    HwbotError                  any error the bot raises on purpose
    ├── ConfigError             an environment variable has a bad value (raised at start-up)
    ├── ProfileError            an office profile is broken; `.problems` lists file, field and message
    ├── UnknownOfficeError      an office id names no loaded profile
    ├── StaffActionError        a staff console action cannot be done (the message is shown to staff)
    ├── AccountError            a staff account cannot be made or changed as asked (`hwbot staff`)
    │   └── PasswordRejected    a new password breaks the rules (Japanese text for the set-password page)
    ├── StoreError              Redis could not be reached or answered unexpectedly
    │   ├── ConflictError       a compare-and-set lost a race; the caller reloads and retries
    │   └── StoreUnavailable    Redis (or a cluster node) cannot take the step now: 503, the caller retries
    │       └── NotReplicated   a write was not acknowledged by HWBOT_REDIS_MIN_REPLICAS replicas in time
    ├── LayoutError             Redis holds data of an older key layout: `hwbot store migrate` first
    ├── DeliveryError           the worker could not deliver an outbox entry (retried with backoff)
    └── BenchError              `hwbot bench` cannot run (a non-empty REDIS_URL, a server that did not start…)
"""

from __future__ import annotations


class HwbotError(Exception):
    """Root of every error the bot raises on purpose."""


class ConfigError(HwbotError):
    """Raised when settings are read and a variable has a bad value; the message names it."""


class ProfileError(HwbotError):
    """Raised when office profiles fail to load; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class UnknownOfficeError(HwbotError):
    """Raised when an office id names no loaded profile."""


class StaffActionError(HwbotError):
    """Raised by `bot.staff.actions` when a booking is not in a state the action allows; Japanese text."""


class AccountError(HwbotError):
    """Raised by `bot.staff.identity` when an account cannot be created or changed; names what is wrong."""


class PasswordRejected(AccountError):
    """Raised when a new password is too short, too common or the account's name; Japanese text."""


class StoreError(HwbotError):
    """Raised when Redis cannot be reached or a stored value cannot be read."""


class ConflictError(StoreError):
    """Raised when a compare-and-set save finds a newer version than the one it loaded."""


class StoreUnavailable(StoreError):
    """Raised when Redis cannot serve the command now: a connection error or timeout, a cluster that is
    down or has no master for a slot (failover under way), a topology that cannot be read.

    Nothing was half-done by the step that raised it (each step is atomic, or idempotent and repeated);
    the webhook answers 503 so that LINE redelivers, the worker tries again in its next cycle.
    """


class NotReplicated(StoreUnavailable):
    """Raised when a booking step was written on its primary but fewer than `HWBOT_REDIS_MIN_REPLICAS`
    replicas acknowledged it within `HWBOT_REDIS_REPLICA_TIMEOUT_MS`: the user must not be told it is done.

    The step is idempotent: the webhook answers 503, LINE redelivers, and the repeated step waits again;
    staff see an error asking them to repeat the action."""


class LayoutError(HwbotError):
    """Raised at start-up when Redis holds keys of an older layout; the message names `hwbot store migrate`."""


class DeliveryError(HwbotError):
    """Raised by the worker's senders; the message is only a class or status (no personal data).

    `permanent` entries (malformed, unknown office) go to the dead-letter stream at once.
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class BenchError(HwbotError):
    """Raised by `hwbot bench` when it refuses to run or its processes fail; the message says why."""
