"""dropq's exceptions: input errors are permanent (never retried), infrastructure errors are transient."""

from __future__ import annotations


class DropqError(Exception):
    """Base of every error dropq raises on purpose."""


class ConfigError(DropqError):
    """A setting or environment variable is missing or malformed."""


class InputError(DropqError):
    """The file itself cannot be processed; retrying will not help. The message is shown to people."""


class TransientError(DropqError):
    """An infrastructure hiccup (throttling, timeout, connection reset); worth retrying with backoff."""


class PermanentError(DropqError):
    """AWS refused a request for a reason retrying does not change (credentials, permissions, a malformed request)."""


class ProducerError(DropqError):
    """The producer could not enqueue every record of an event; the event must be retried."""


class ActionError(DropqError):
    """An operator's action (a retry, a redrive) cannot be done as asked; the message says why."""
