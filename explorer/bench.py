"""Benchmarks kept in the repo: `python -m explorer bench summary|train`."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from explorer import registry
from explorer.summary import _trace, summarize


@dataclass(frozen=True)
class SummaryTiming:
    name: str
    first_ms: float   # first summary of this config in the process (after earlier models warmed torch)
    warm_ms: float    # median uncached summary: a config the cache has not seen
    cached_ms: float  # median cached summary: what the app pays to redraw


def bench_summary(repeat: int = 5) -> list[SummaryTiming]:
    out = []
    for name in registry.list_models():
        config = registry.get(name).config
        _trace.cache_clear()
        first = _timed(summarize, config)
        warm = []
        for _ in range(repeat):
            _trace.cache_clear()
            warm.append(_timed(summarize, config))
        cached = [_timed(summarize, config) for _ in range(repeat)]
        out.append(SummaryTiming(name, first, statistics.median(warm), statistics.median(cached)))
    return out


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t) * 1000
