"""Notifications a Textual app showed, recorded from its public Notify messages (a run_test message hook)."""

from __future__ import annotations

from textual.message import Message
from textual.notifications import Notification, Notify


class Notices:
    """Pass as `app.run_test(message_hook=notices)`; `shown` then holds every notification in order."""

    def __init__(self) -> None:
        self.shown: list[Notification] = []

    def __call__(self, message: Message) -> None:
        """The message hook: keep each Notify's notification."""
        if isinstance(message, Notify):
            self.shown.append(message.notification)

    @property
    def texts(self) -> list[str]:
        """The messages, in order."""
        return [n.message for n in self.shown]
