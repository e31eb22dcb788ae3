"""Channels: turn a transport's input into dialog events and draw the dialog's replies on it."""
