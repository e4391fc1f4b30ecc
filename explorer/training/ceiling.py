"""The train step's ceiling under each setting this machine offers: memory format, thread count,
torch.compile, and bfloat16 autocast where the hardware runs it natively. Each is timed on one fixed batch
already on the device, so only the step itself counts (`python -m explorer bench train` prints the table,
the eager ceiling and the best). The compiled step is kept in the run store, whose later runs of the same
config compile where its rate pays for its compile time (a compile costs as much to measure as to use, so a
run never measures it itself)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.training.estimate import StepTiming, _sync
from explorer.training.loop import bf16_native, default_threads, new_model, sgd_step
from explorer.training.recipes import TrainSettings
from explorer.training.store import RunStore

WARMUP_BATCHES = 3  # first batches build kernels and caches (and, compiled, the graphs): never timed


@dataclass(frozen=True)
class Ceiling:
    memory_format: str     # "contiguous" or "channels_last"
    threads: int
    compiled: bool
    bf16: bool
    images_per_sec: float  # 0 where the setting failed (see `failed`)
    setup_seconds: float   # the warm-up steps: for a compiled step, its compile time
    failed: str = ""

    @property
    def setting(self) -> str:
        parts = ["compiled" if self.compiled else "eager", self.memory_format, f"{self.threads} threads"]
        return ", ".join(parts + (["bf16 autocast"] if self.bf16 else []))


class FixedBatchStep:
    """The train step alone: `config`'s network taking SGD steps on one fixed batch already on the device, in
    a memory format and precision, eager or compiled. Nothing else a run does (no data, no reports) is in it."""

    def __init__(self, config: ModelConfig, settings: TrainSettings, channels_last: bool, compiled: bool = False,
                 bf16: bool = False) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.device = torch.device(settings.device)
        self.model = new_model(config, settings.seed, settings.init).to(self.device, memory_format=fmt)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=settings.lr)
        self.step_model = torch.compile(self.model) if compiled else self.model
        self.x = torch.rand(settings.batch_size, config.in_channels, config.resolution, config.resolution,
                            device=self.device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, config.num_classes, (settings.batch_size,), device=self.device)
        self.loss_fn, self.amp = nn.CrossEntropyLoss(), torch.bfloat16 if bf16 else None

    def run(self, steps: int) -> float:
        """Seconds that `steps` steps take, the device waited for."""
        start = time.perf_counter()
        for _ in range(steps):
            sgd_step(self.step_model, self.optimizer, self.loss_fn, self.x, self.y, amp_dtype=self.amp)
        _sync(self.device)
        return time.perf_counter() - start


def step_rate(config: ModelConfig, settings: TrainSettings, batches: int, channels_last: bool, threads: int,
              compiled: bool = False, bf16: bool = False) -> Ceiling:
    """Images a second of `batches` SGD steps of `config` on one fixed batch, the first WARMUP_BATCHES not timed."""
    row = dict(memory_format="channels_last" if channels_last else "contiguous", threads=threads,
               compiled=compiled, bf16=bf16)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        step = FixedBatchStep(config, settings, channels_last, compiled, bf16)
        setup = step.run(WARMUP_BATCHES)
        rate = (batches - WARMUP_BATCHES) * settings.batch_size / step.run(batches - WARMUP_BATCHES)
        return Ceiling(**row, images_per_sec=rate, setup_seconds=setup)
    except Exception as err:  # noqa: BLE001 (a compiler missing or failing is a row of the table, not a crash)
        return Ceiling(**row, images_per_sec=0.0, setup_seconds=0.0, failed=f"{type(err).__name__}: {err}"[:200])
    finally:
        torch.set_num_threads(before)


def ceilings(config: ModelConfig, settings: TrainSettings, batches: int, run: StepTiming,
             compiled: bool = True) -> list[Ceiling]:
    """The eager step in each memory format and thread count (1 and this process's default), in bfloat16
    where the hardware has it, then compiled in the memory format and precision `run` (the measurement a run
    takes its settings from) chooses, with a run's threads."""
    threads = sorted({1, default_threads()}) if settings.device == "cpu" else [torch.get_num_threads()]
    rows = [step_rate(config, settings, batches, channels_last, n) for channels_last in (False, True) for n in threads]
    best = max(rows, key=lambda r: r.images_per_sec)
    if bf16_native(settings.device):
        rows.append(step_rate(config, settings, batches, best.memory_format == "channels_last", best.threads,
                              bf16=True))
    if compiled:
        rows.append(step_rate(config, settings, batches, run.use_channels_last, threads[-1], compiled=True,
                              bf16=run.use_bf16))
    return rows


def keep_compiled(run: StepTiming, row: Ceiling, store: RunStore) -> None:
    """Keep a compiled step's rate and compile time with the run measurement in the store, where each later
    run of the same config, batch, device and threads reads it and compiles where that pays
    (StepTiming.compile_pays). Only a measurement the store already keeps (an idle one) gains it."""
    saved = store.calibration(run.key) if run.key else None
    if saved is not None and row.compiled and not row.failed:
        store.save_calibration(run.key, {**saved, "compiled_rate": row.images_per_sec,
                                         "compile_seconds": row.setup_seconds})
