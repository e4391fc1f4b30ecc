"""CNN Explorer's engine: the d2l chapter-7 catalog, layer summaries, training and the run store."""

from explorer.errors import ConfigError

__all__ = ["ConfigError"]
