"""The LINE channel: the webhook, the Messaging API client, the rich menu and the pure renderer (`render`)."""
