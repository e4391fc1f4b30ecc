"""The engine's errors: anything a person can cause or fix, said in words a page shows beside what to change,
and the CLI prints. Library code raises them; only pages and the CLI show them.

Every error is said as a template (a key of the language catalogs, English) and its values, and keeps both,
so each page shows it in its own language (`text()`): refusals are cached and shared, and must not keep the
language of whoever met them first. A template with no values is said as it is, braces and all; the arguments
up to the template are positional only, so a value may have any name (knob, limit).

    raise QuotaError("EXPLORER_MAX_QUEUE", "{n} runs are already waiting", n=len(queue))"""

from __future__ import annotations

from explorer.i18n import keep, say


class ExplorerError(ValueError):
    """What went wrong and what to do: `message` in English, `text()` in the current language."""

    def __init__(self, template: str, /, **values: object) -> None:
        self.template, self.values = template, values
        self.message = say(template, values, str)
        super().__init__(self.message)

    def text(self) -> str:
        """The message in the current language, and its values marked as words (i18n.N_) with it."""
        return say(self.template, self.values)

    def said(self) -> str:
        """The message as the CLI and a refused Start show it on its own: `text()`, a setting's named first."""
        return self.text()

    def kept(self) -> str:
        """The message to store (a failed run's error), read later in the reader's language (i18n.told)."""
        return keep(self.template, **self.values)

    def again(self) -> ExplorerError:
        """A fresh copy to raise once more (a cached refusal must not pile up tracebacks)."""
        return _restore(type(self), self.args, dict(self.__dict__))

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

    def __init__(self, knob: str, template: str, related: tuple[str, ...] = (), /, **values: object) -> None:
        super().__init__(template, **values)
        self.args = (f"{knob}: {self.message}",)
        self.knob = knob
        self.related = related

    def said(self) -> str:
        return f"{self.knob}: {self.text()}"


class QuotaError(ExplorerError):
    """Over one of a server's limits: runs per visitor or address, the queue, a run's time, a measurement's
    time or memory. `limit` names the setting (EXPLORER_...); the message says what to wait for or change."""

    def __init__(self, limit: str, template: str, /, **values: object) -> None:
        super().__init__(template, **values)
        self.limit = limit


class OwnerError(ExplorerError):
    """Only a run's owner, or an admin, may stop, delete or download it."""


class MissingWeightsError(ExplorerError):
    """A run has no saved weights: never saved, or the file went away."""
