"""Every environment variable the bot reads, in one typed class (nothing else reads os.environ)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.clock import parse_instant
from bot.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LINE_HOST = "https://api.line.me"  # LINE_API_HOST unset; in simulator mode the app calls its stand-in


def _default_profiles_dir() -> Path:
    local = Path("office_profiles")
    return local if local.is_dir() else REPO_ROOT / "office_profiles"


class Settings(BaseSettings):
    """Configuration from the environment; see the README's table of variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # A single server or a Redis Cluster (README, "Running on Redis Cluster"): `auto` asks the server
    # named by REDIS_URL at start-up (INFO cluster); `single` and `cluster` skip the question.
    redis_mode: Literal["auto", "single", "cluster"] = Field(default="auto", validation_alias="HWBOT_REDIS_MODE")
    # rediss:// (TLS): the CA bundle that signed the server's certificate (managed services publish
    # theirs); a client certificate and its key where the server asks for one (tls-auth-clients).
    redis_ca_file: Path | None = Field(default=None, validation_alias="HWBOT_REDIS_CA_FILE")
    redis_cert_file: Path | None = Field(default=None, validation_alias="HWBOT_REDIS_CERT_FILE")
    redis_key_file: Path | None = Field(default=None, validation_alias="HWBOT_REDIS_KEY_FILE")
    line_channel_secret: str | None = Field(default=None, validation_alias="LINE_CHANNEL_SECRET")
    line_channel_access_token: str | None = Field(
        default=None, validation_alias="LINE_CHANNEL_ACCESS_TOKEN"
    )
    line_api_host: str = Field(default=DEFAULT_LINE_HOST, validation_alias="LINE_API_HOST")
    now: datetime | None = Field(default=None, validation_alias="HWBOT_NOW")
    profiles_dir: Path = Field(
        default_factory=_default_profiles_dir, validation_alias="HWBOT_PROFILES_DIR"
    )
    slack_webhook_url: str | None = Field(default=None, validation_alias="SLACK_WEBHOOK_URL")
    # The shared console token of old: no longer opens anything (staff accounts replaced it); when it is
    # still set, start-up logs a warning so that the operator removes it.
    legacy_staff_token: str | None = Field(default=None, validation_alias="HWBOT_STAFF_TOKEN")
    # Reverse proxies in front of the app whose X-Forwarded-For is believed (the client's address for
    # the login backoff and the session list); 0: the peer's address.
    trusted_proxies: int = Field(default=0, ge=0, le=5, validation_alias="HWBOT_TRUSTED_PROXIES")
    public_url: str | None = Field(default=None, validation_alias="HWBOT_PUBLIC_URL")
    worker_max_attempts: int = Field(default=6, ge=1, le=50, validation_alias="HWBOT_WORKER_MAX_ATTEMPTS")
    # An entry pending this long with no retry scheduled belongs to a dead worker: another one takes it.
    worker_lease_seconds: int = Field(default=60, ge=0, le=3600, validation_alias="HWBOT_WORKER_LEASE_SECONDS")
    # Threads of `hwbot worker` sending to LINE at once (each waits ~150 ms for LINE from afar).
    worker_threads: int = Field(default=64, ge=1, le=256, validation_alias="HWBOT_WORKER_THREADS")
    # Streams the outbox is split into (bot.store.shards): a user's keys and entries live in one of them.
    outbox_shards: int = Field(default=16, ge=1, le=1024, validation_alias="HWBOT_OUTBOX_SHARDS")
    reminders: Literal["all", "opt_in", "off"] = Field(default="all", validation_alias="HWBOT_REMINDERS")
    var_dir: Path = Field(default=Path("var"), validation_alias="HWBOT_VAR_DIR")
    retention_days: int = Field(default=90, ge=1, le=3650, validation_alias="HWBOT_RETENTION_DAYS")
    # Days a closed handoff thread (what the user and staff wrote) is kept before the worker deletes it.
    thread_retention_days: int = Field(default=30, ge=1, le=3650, validation_alias="HWBOT_THREAD_RETENTION_DAYS")
    # Days the audit trail (who saw and changed what) is kept before the worker trims it.
    audit_retention_days: int = Field(default=365, ge=1, le=3650, validation_alias="HWBOT_AUDIT_RETENTION_DAYS")
    conversation_ttl_minutes: int = Field(
        default=30, gt=0, le=24 * 60, validation_alias="HWBOT_CONVERSATION_TTL_MINUTES"
    )
    # Replicas that must acknowledge a booking step before the user is told (0: no WAIT), and how long
    # to wait for them (the step then fails with NotReplicated: 503, LINE redelivers).
    redis_min_replicas: int = Field(default=0, ge=0, le=16, validation_alias="HWBOT_REDIS_MIN_REPLICAS")
    redis_replica_timeout_ms: int = Field(
        default=500, ge=1, le=60_000, validation_alias="HWBOT_REDIS_REPLICA_TIMEOUT_MS"
    )

    @field_validator("now", mode="before")
    @classmethod
    def _parse_now(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            return parse_instant(value)
        return value

    @field_validator("reminders", mode="before")
    @classmethod
    def _reminders(cls, value: object) -> object:
        """Accept the old boolean values (true: all, false: off) and any case."""
        if isinstance(value, bool):
            return "all" if value else "off"
        if isinstance(value, str):
            folded = value.strip().lower().replace("-", "_")
            legacy = {"true": "all", "1": "all", "yes": "all", "false": "off", "0": "off", "no": "off"}
            folded = legacy.get(folded, folded)
            if folded not in ("all", "opt_in", "off"):
                raise ValueError("must be all, opt_in or off")
            return folded
        return value

    @field_validator("redis_url", mode="after")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("redis_mode", mode="before")
    @classmethod
    def _redis_mode(cls, value: object) -> object:
        if isinstance(value, str):
            folded = value.strip().lower() or "auto"
            if folded not in ("auto", "single", "cluster"):
                raise ValueError("must be auto, single or cluster")
            return folded
        return value

    @field_validator("redis_ca_file", "redis_cert_file", "redis_key_file", mode="before")
    @classmethod
    def _readable_file(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if value is not None:
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise ValueError(f"{path} is not a file")
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"{path} cannot be read ({exc.strerror})") from None
            return path
        return value

    @model_validator(mode="after")
    def _redis_combination(self) -> "Settings":
        """Rules across the Redis variables; each message starts with the variable to change."""
        url = self.redis_url or ""
        if self.redis_mode == "cluster" and not url:
            raise ValueError("HWBOT_REDIS_MODE: cluster needs REDIS_URL (the embedded Redis is a single server)")
        if self.redis_mode == "cluster" and url.startswith("unix://"):
            raise ValueError("HWBOT_REDIS_MODE: a Redis Cluster is reached over TCP: REDIS_URL must be redis:// or rediss://")
        tls_files = [("HWBOT_REDIS_CA_FILE", self.redis_ca_file), ("HWBOT_REDIS_CERT_FILE", self.redis_cert_file),
                     ("HWBOT_REDIS_KEY_FILE", self.redis_key_file)]
        for variable, value in tls_files:
            if value is not None and not url.startswith("rediss://"):
                raise ValueError(f"{variable}: only used with TLS: REDIS_URL must start with rediss://")
        if (self.redis_cert_file is None) != (self.redis_key_file is None):
            missing = "HWBOT_REDIS_KEY_FILE" if self.redis_key_file is None else "HWBOT_REDIS_CERT_FILE"
            raise ValueError(f"{missing}: a client certificate needs both HWBOT_REDIS_CERT_FILE and HWBOT_REDIS_KEY_FILE")
        return self

    @field_validator("line_api_host", mode="after")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.line.me")
        return value.rstrip("/")

    @field_validator("public_url", mode="after")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://hwbot.example.jp")
        return value.rstrip("/") if value else None

    def secret_from(self, variable: str) -> str | None:
        """A secret whose variable a profile names (e.g. an office's own Slack webhook)."""
        import os

        if variable == "SLACK_WEBHOOK_URL":
            return self.slack_webhook_url
        return os.environ.get(variable) or None

    @property
    def simulator_mode(self) -> bool:
        """True when no LINE channel is configured: the app plays LINE for itself."""
        return not (self.line_channel_secret and self.line_channel_access_token)


# Values never echoed in an error message: they may hold credentials.
_SECRET_FIELDS = {
    "redis_url",
    "line_channel_secret",
    "line_channel_access_token",
    "slack_webhook_url",
    "legacy_staff_token",
}


def real_clock_environment() -> dict[str, str]:
    """This process's environment without libfaketime (`LD_PRELOAD`, `FAKETIME*`), for the test kit's
    redis-server and redis-cli children: libfaketime keeps Debian's jemalloc-built redis-server from
    starting, and a Redis server keeps its own clock anyway (only the app's clock is injected)."""
    import os

    return {name: value for name, value in os.environ.items()
            if name != "LD_PRELOAD" and not name.startswith("FAKETIME")}


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides); a bad value raises ConfigError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        by_alias = {info.validation_alias: name for name, info in Settings.model_fields.items()}
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a rule across variables: its message names the variable to change
                lines.append(message)
                continue
            variable = str(err["loc"][0])
            field = by_alias.get(variable, variable)
            shown = "" if field in _SECRET_FIELDS else f" (got {err.get('input')!r})"
            lines.append(f"{variable}: {message}{shown}")
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
