"""Errors a user can act on.

Every error raised on purpose by nst-tui derives from `NSTError`; its message is
one line that names the thing at fault and what is allowed. The CLI prints it
and exits 2, the dashboard shows it; anything else is a bug.
"""

from __future__ import annotations


class NSTError(Exception):
    """An error with a message meant for the user, not a traceback."""


class ConfigError(NSTError):
    """One or more configuration fields are invalid.

    `errors` maps each field name to its message, so a form can mark fields.
    """

    def __init__(self, errors: dict[str, str], source: str = "") -> None:
        self.errors = dict(errors)
        self.source = source
        where = f"{source}: " if source else ""
        text = "; ".join(f"{field}: {msg}" for field, msg in self.errors.items())
        super().__init__(f"{where}{text}")


class PresetError(NSTError):
    """A preset cannot be found or read."""


class ImageError(NSTError):
    """An image cannot be read or used."""


class BackboneError(NSTError):
    """Network weights cannot be found, fetched or read."""


class BudgetError(NSTError):
    """Nothing fits a run's memory budget (max_memory), not even the smallest tiles."""


class RunError(NSTError):
    """A run could not start or could not be recorded."""
