"""How busy this machine is: the share of its CPUs other processes take, from the kernel's counters, and
readings kept only when it was idle. One bad measurement must not decide later ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

BUSY_SHARE = 0.25               # other processes took more of the CPUs than this: the reading is not kept
BUSY_REUSE_SECONDS = 60.0       # a busy reading serves while the machine stays busy, at most this long


class MachineLoad:
    """The share of this machine's CPUs that other processes took since this was made, from the kernel's
    counters (Linux's /proc/stat; elsewhere 0, nothing known). What this process did is not counted."""

    def __init__(self) -> None:
        self._start = cpu_sample()
        self._made = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self._made

    def others(self) -> float:
        end = cpu_sample()
        if self._start is None or end is None or end[2] - self._start[2] <= 0:
            return 0.0
        (busy0, own0, wall0, cpus), (busy1, own1, wall1, _) = self._start, end
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) * cpus))


class Readings:
    """Measurements this process keeps, by key. One taken while the machine was busy is not kept for later:
    it serves again only while the machine stays busy (so a page's reruns do not measure again and again),
    judged over the stretch since it was last looked at, and at most BUSY_REUSE_SECONDS; an idle machine
    measures anew."""

    def __init__(self, kept: int = 256) -> None:
        self._good: dict[object, object] = {}   # the oldest first
        self._busy: dict[object, tuple[float, MachineLoad, object]] = {}  # key -> (taken, since looked, value)
        self._kept = kept

    def get(self, key: object):
        if key in self._good:
            return self._good[key]
        taken, window, value = self._busy.get(key, (0.0, None, None))
        if window is None or time.monotonic() - taken > BUSY_REUSE_SECONDS:
            return None
        if window.seconds() < 1.0:  # too short a stretch to tell
            return value
        if window.others() > BUSY_SHARE:  # still busy: the next look judges the next stretch
            self._busy[key] = (taken, MachineLoad(), value)
            return value
        return None

    def put(self, key: object, value: object, busy: bool) -> None:
        now = time.monotonic()
        if busy:
            for stale in [k for k, (taken, *_) in list(self._busy.items()) if now - taken > BUSY_REUSE_SECONDS]:
                self._busy.pop(stale, None)
            self._busy[key] = (now, MachineLoad(), value)
            return
        self._busy.pop(key, None)
        self._good[key] = value
        while len(self._good) > self._kept:
            self._good.pop(next(iter(self._good)), None)

    def drop(self, key: object) -> None:
        self._good.pop(key, None)
        self._busy.pop(key, None)


def cpu_sample() -> tuple[float, float, float, int] | None:
    """(CPU seconds all processes spent busy, this process's CPU seconds, wall time, CPUs)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return busy, time.process_time(), time.monotonic(), max(1, cpus)
