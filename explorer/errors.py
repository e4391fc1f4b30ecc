"""The one exception the engine raises for bad input, so callers can show it next to the knob at fault."""


class ConfigError(ValueError):
    """An impossible or malformed config.

    `knob` names the config field (or CLI/training setting) at fault so a UI can put the message
    beside that widget; the message says what broke and what would work. A rule between two knobs
    (blocks and channels need the same length) lists the other one in `related`, so a UI can put the
    message under whichever of them the user just changed.
    """

    def __init__(self, knob: str, message: str, related: tuple[str, ...] = ()) -> None:
        super().__init__(f"{knob}: {message}")
        self.knob = knob
        self.message = message
        self.related = related
