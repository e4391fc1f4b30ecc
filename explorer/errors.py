"""The engine's errors: anything a person can cause or fix, said in words a page shows beside what to change,
and the CLI prints. Library code raises them; only pages and the CLI show them."""


class ExplorerError(ValueError):
    """What went wrong and what to do, in `message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

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
