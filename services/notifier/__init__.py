"""Notifier: milestone emails to organizers, each sent once."""
