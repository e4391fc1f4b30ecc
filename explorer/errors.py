"""The engine's errors: anything a person can cause or fix, said in words a page shows beside what to change,
and the CLI prints. Library code raises them; only pages and the CLI show them.

An error made from a template (`ConfigError.of`) keeps it and its values, so each page shows it in its own
language (`text()`): refusals are cached and shared, and must not keep the language of whoever met them first."""

from __future__ import annotations

from explorer.i18n import _


class ExplorerError(ValueError):
    """What went wrong and what to do, in `message` (English)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.template, self.values = "", {}

    def text(self) -> str:
        """The message in the current language: its template translated and filled in, else as it was said."""
        return _(self.template).format(**self.values) if self.template else self.message

    def __reduce__(self):  # sent whole from a worker process: Exception's own pickling re-calls __init__(*args)
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[ExplorerError], args: tuple, state: dict) -> ExplorerError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ConfigError(ExplorerError):
    """An impossible or malformed config or setting.

    `knob` names the config field (or CLI/training setting) at fault so a UI can put the message
    beside that widget; the message says what broke and what would work. A rule between two knobs
    (blocks and channels need the same length) lists the other one in `related`, so a UI can put the
    message under whichever of them the user just changed.
    """

    def __init__(self, knob: str, message: str, related: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.args = (f"{knob}: {message}",)
        self.knob = knob
        self.related = related

    def again(self) -> ConfigError:
        """A fresh copy to raise once more (a cached refusal must not pile up tracebacks)."""
        err = ConfigError(self.knob, self.message, self.related)
        err.template, err.values = self.template, self.values
        return err

    @classmethod
    def of(cls, knob: str, template: str, related: tuple[str, ...] = (), **values) -> ConfigError:
        """An error said by a template (a key of the language catalogs) and its values."""
        err = cls(knob, template.format(**values), related)
        err.template, err.values = template, values
        return err


class QuotaError(ExplorerError):
    """Over one of a server's limits: runs per visitor or address, the queue, a run's time, a measurement's
    time or memory. `limit` names the setting (EXPLORER_...); the message says what to wait for or change."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class OwnerError(ExplorerError):
    """Only a run's owner, or an admin, may stop, delete or download it."""


class MissingWeightsError(ExplorerError):
    """A run has no saved weights: never saved, or the file went away."""
