"""What a run may ask of this server, checked before it is queued: a visitor's and a network address's
quotas, the memory budget, and the time limit. Each refusal names its limit and what to do; a run's name is
made safe here too."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from explorer.config import ModelConfig, printable
from explorer.errors import ConfigError, QuotaError
from explorer.identity import Visitor
from explorer.summary import summarize
from explorer.training.estimate import Estimate, max_run_seconds, over_time_limit
from explorer.training.recipes import TrainSettings
from explorer.training.schema import RunRecord

NAME_CHARACTERS = 60
STORE_MB_PER_VISITOR = 100  # a class of 30 keeps 3 GB: a dozen quick runs each, or two long ResNet runs
DATASET_BYTES = 70_000 * 28 * 28 + 70_000 * 8  # uint8 images and int64 labels on the device
RUNTIME_BYTES = 200 * 2**20  # torch's kernels and buffers that a training process touches (bench memory)


@dataclass(frozen=True)
class Quotas:
    """What one visitor may ask of a shared server; each refusal names its limit and what to do."""

    runs_per_visitor: int = 2       # queued and running at once
    max_queue: int = 50             # queued runs of everyone together
    max_seconds: float | None = None  # the estimated time of one run; None: no limit
    runs_per_address: int = 10      # queued and running from one network address: clearing a cookie makes a
                                    # new visitor, not a new address
    store_mb_per_visitor: int | None = None  # what one visitor's runs may keep (weights, metrics, dynamics,
                                             # predictions); None: no limit

    @classmethod
    def from_env(cls) -> Quotas:
        """A server's quotas: EXPLORER_RUNS_PER_VISITOR, EXPLORER_MAX_QUEUE, EXPLORER_MAX_RUN_MINUTES,
        EXPLORER_RUNS_PER_ADDRESS, EXPLORER_STORE_MB_PER_VISITOR."""
        return cls(runs_per_visitor=_env_int("EXPLORER_RUNS_PER_VISITOR", 2),
                   max_queue=_env_int("EXPLORER_MAX_QUEUE", 50), max_seconds=max_run_seconds(),
                   runs_per_address=_env_int("EXPLORER_RUNS_PER_ADDRESS", 10),
                   store_mb_per_visitor=_env_int("EXPLORER_STORE_MB_PER_VISITOR", STORE_MB_PER_VISITOR))


UNLIMITED = Quotas(runs_per_visitor=10**9, max_queue=10**9, max_seconds=None, runs_per_address=10**9)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    return int(text) if text.isdigit() and int(text) > 0 else default


def run_name(text: str) -> str:
    """A run's name as its owner typed it, made safe to show anywhere: control and formatting characters
    (a right-to-left override, say) dropped, spaces collapsed, at most NAME_CHARACTERS characters."""
    return " ".join(printable(text).split())[:NAME_CHARACTERS]


def memory_budget(device: str) -> int:
    """Bytes a run may need: EXPLORER_MEMORY_BUDGET_GB, else 90% of free GPU memory or half of RAM."""
    if os.environ.get("EXPLORER_MEMORY_BUDGET_GB"):
        return int(float(os.environ["EXPLORER_MEMORY_BUDGET_GB"]) * 2**30)
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0] * 0.9)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


class Refusal(Exception):
    """Over a quota: which (its EXPLORER_ variable) and the runs that count against it. Raised inside the run
    store's admission transaction, said in words (quota_error) once it is over."""

    def __init__(self, limit: str, runs: list[RunRecord]) -> None:
        super().__init__(limit)
        self.limit, self.runs = limit, runs


def over_quota(active: list[RunRecord], visitor: Visitor, quotas: Quotas, adding: int = 1) -> Refusal | None:
    """Whether `adding` new runs of `visitor` would put them, their network address, or the queue over a
    quota, given every queued and running run (`active`); an admin is bound by the queue's length only."""
    mine = [r for r in active if r.owner == visitor.id]
    if not visitor.admin and len(mine) + adding > quotas.runs_per_visitor:
        return Refusal("EXPLORER_RUNS_PER_VISITOR", mine)
    near = [r for r in active if visitor.address is not None and r.address == visitor.address]
    if not visitor.admin and len(near) + adding > quotas.runs_per_address:
        return Refusal("EXPLORER_RUNS_PER_ADDRESS", near)
    queued = [r for r in active if r.status == "queued"]
    if len(queued) + adding > quotas.max_queue:
        return Refusal("EXPLORER_MAX_QUEUE", queued)
    return None


def quota_error(refusal: Refusal, when: str) -> QuotaError:
    """A visitor's or an address's refusal, saying how many runs count and `when` the first should end."""
    if refusal.limit == "EXPLORER_RUNS_PER_VISITOR":
        return QuotaError(refusal.limit, "you already have {n} runs queued or running, this server's limit per "
                          "visitor (EXPLORER_RUNS_PER_VISITOR); stop one, or wait: {when}", n=len(refusal.runs),
                          when=when)
    return QuotaError(refusal.limit, "{n} runs from your network address are queued or running, this server's limit "
                      "per address (EXPLORER_RUNS_PER_ADDRESS); wait: {when}", n=len(refusal.runs), when=when)


def estimate_bytes(config: ModelConfig, settings: TrainSettings) -> int:
    """The run's peak: the network's training memory at its batch size, the data set and torch's runtime
    (0.88-1.15 of the measured peaks of the book's networks' book and quick presets; RegNetX-32's book preset
    0.71: bench memory, docs/performance.md)."""
    totals = summarize(config.peak_config(), batch_size=settings.batch_size).totals
    # SGD's momentum keeps a buffer per weight, Adam two (its running mean and variance)
    momentum = totals.gradient_bytes * (2 if settings.optimizer == "adam" else 1 if settings.momentum else 0)
    dynamics = totals.gradient_bytes  # a reported step keeps the weights before it (training.dynamics)
    return totals.training_bytes + momentum + dynamics + DATASET_BYTES + RUNTIME_BYTES


def check_memory(config: ModelConfig, settings: TrainSettings) -> int:
    """The run's memory from its summary (nothing allocated); a ConfigError when it is over the budget."""
    need = estimate_bytes(config, settings)
    budget = memory_budget(settings.device)
    if need > budget:
        raise ConfigError("batch_size", "this run needs about {need:.1f} GiB but the budget is {budget:.1f} GiB "
                                        "(EXPLORER_MEMORY_BUDGET_GB); lower batch_size or resolution",
                          need=need / 2**30, budget=budget / 2**30)
    return need


def check_time(estimate: Estimate, limit: float | None) -> None:
    """Refuse a run over this server's time limit, saying the estimate, the limit and what to do. Only an
    estimate that load cannot inflate refuses: one measured on a busy machine is the time now, not the
    run's, and the run waits its turn instead."""
    if limit is not None and not estimate.busy and estimate.seconds > limit:
        raise over_time_limit(estimate.text, limit)
