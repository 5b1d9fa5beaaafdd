"""Domain errors. Each message is a sentence the user can act on; the Slack layer shows it as-is."""

from __future__ import annotations


class DomainError(Exception):
    """Base for errors whose message is safe and useful to show to a user."""


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class AlreadyDecided(DomainError):
    """The request was approved, rejected or cancelled before this action arrived."""


class IllegalTransition(DomainError):
    pass


class TransientError(Exception):
    """A failure worth retrying (network blip, rate limit, lock held)."""


class BackendError(Exception):
    """A cloud backend refused the work; the message says why."""
