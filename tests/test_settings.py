"""Settings: one class reads the environment; a bad value names its variable."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings


def test_defaults_are_simulator_mode_with_embedded_redis(monkeypatch):
    for name in ("REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "HWBOT_NOW", "LINE_API_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.simulator_mode
    assert settings.line_api_host == "https://api.line.me"
    assert settings.profiles_dir.name == "office_profiles"


def test_values_are_read_and_parsed(monkeypatch):
    monkeypatch.setenv("HWBOT_NOW", "2026-11-30T00:00:00Z")
    monkeypatch.setenv("LINE_CHANNEL_SECRET", "s")
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "t")
    monkeypatch.setenv("LINE_API_HOST", "http://127.0.0.1:9999/")
    settings = load_settings()
    assert settings.now.isoformat() == "2026-11-30T09:00:00+09:00"
    assert not settings.simulator_mode
    assert settings.line_api_host == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("HWBOT_NOW", "not a date"),
        ("REDIS_URL", "localhost:6379"),
        ("LINE_API_HOST", "api.line.me"),
        ("HWBOT_CONVERSATION_TTL_MINUTES", "-5"),
        ("HWBOT_REMINDERS", "sometimes"),
        ("HWBOT_TRUSTED_PROXIES", "-1"),
        ("HWBOT_OUTBOX_SHARDS", "0"),
        ("HWBOT_OUTBOX_SHARDS", "1025"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_secrets_are_not_echoed(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "http://user:hunter2@example")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    "value, mode", [("all", "all"), ("OPT_IN", "opt_in"), ("opt-in", "opt_in"), ("off", "off"), ("true", "all"), ("0", "off")]
)
def test_reminders_mode(monkeypatch, value, mode):
    monkeypatch.setenv("HWBOT_REMINDERS", value)
    assert load_settings().reminders == mode


def test_reminders_default_to_all(monkeypatch):
    monkeypatch.delenv("HWBOT_REMINDERS", raising=False)
    assert load_settings().reminders == "all"


def test_the_old_staff_token_is_read_only_to_warn_and_trusted_proxies_are_bounded(monkeypatch):
    monkeypatch.setenv("HWBOT_STAFF_TOKEN", "noto-staff")  # short or long: it opens nothing any more
    assert load_settings().legacy_staff_token == "noto-staff"
    assert load_settings().trusted_proxies == 0
    monkeypatch.setenv("HWBOT_TRUSTED_PROXIES", "9")
    with pytest.raises(ConfigError, match="HWBOT_TRUSTED_PROXIES"):
        load_settings()
