"""The staff side's edge: rendering staff notices (Slack Block Kit, LINE) and the outbox worker."""
