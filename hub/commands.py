"""Commands the police platform sends the hub (``<prefix>/commands/<name>``), by name.

The police link's inbox (``hub.police.commands``) checks a command, runs it at most once
and answers it; what a command *does* belongs to the
service that owns it. The composition root (``hub.app``) hands one :class:`CommandRegistry`
to the link and to each service that answers commands; each registers its handlers:

- ``ack``: the alarm lifecycle (``hub.linkage.lifecycle``)
- ``probe``: the health service (``hub.health.service``)
- ``snapshot``: the linkage service (``hub.linkage.service``)
- ``compliance``: the compliance service (``hub.compliance.service``)

A new command (inspection requests, rectification notices…) is one more ``register`` call by
the service that carries it out, and a line here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Takes the command's JSON body; returns the ``result`` of the response, or raises
:class:`CommandError`."""


class CommandError(Exception):
    """A command could not be carried out; ``code`` goes into the error response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CommandRegistry:
    """Command name → handler. One name has one handler; registering it again replaces it."""

    def __init__(self) -> None:
        self._handlers: dict[str, CommandHandler] = {}

    def register(self, name: str, handler: CommandHandler) -> None:
        """Answer ``<prefix>/commands/<name>`` with ``handler``."""
        self._handlers[name] = handler

    def get(self, name: str) -> CommandHandler | None:
        return self._handlers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))
