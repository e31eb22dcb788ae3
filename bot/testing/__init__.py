"""The test kit shipped with the bot: a clean Redis per test, profile builders (used by pytest)."""
