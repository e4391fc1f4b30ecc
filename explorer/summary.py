"""A config's layer table and totals: one pass (explorer.trace) on the meta device, no real weights.

`summarize(config)` is cached by config, so the app redraws instantly, and bounded before it starts (layers,
parameters); a server traces new configs in processes of its own. Shape failures become a `ConfigError`
that names the resolution and the smallest one that works.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields, replace

import pandas as pd
import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig, max_params
from explorer.errors import ConfigError, QuotaError
from explorer.i18n import N_
from explorer.meta import building_on_meta, fast_meta
from explorer.trace import BYTES_PER_FLOAT, LayerError, describe, quiet
from explorer.training.processes import Pool, Service, ServiceDied

MAX_LAYERS = 1000    # leaf layers one summary may have: about 2 s on a 2-core CPU (tests/test_summary.py)


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    mult_adds: int                  # per image
    activation_bytes: int           # per image: every layer's output
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    batch_size: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int            # plain SGD, as d2l's train_ch6, keeps no state (a run with momentum adds a
                                    # buffer per weight: admission.estimate_bytes)
    saved_bytes: int                # at batch_size: what autograd keeps for the backward pass
    in_flight_bytes: int            # at batch_size: the largest layer output, computed while those are held

    @property
    def training_bytes(self) -> int:
        """The network's memory at the peak of a training step at `batch_size` (a run adds the data set and
        torch's runtime: see admission.estimate_bytes)."""
        return (self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + self.saved_bytes
                + self.in_flight_bytes)

    @property
    def inference_bytes(self) -> int:
        """The network's memory to predict `batch_size` images, at most: its weights, and a layer's input and
        output at once (each at most the largest output); nothing is kept for a backward pass."""
        return self.weight_bytes + 2 * self.in_flight_bytes


@dataclass(frozen=True)
class Summary:
    layers: pd.DataFrame
    totals: Totals


def summarize(config: ModelConfig, batch_size: int = 1) -> Summary:
    """Per-layer table and totals for `config`; the memory estimate is for `batch_size` images."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 65536:
        raise ConfigError("batch_size", "must be a whole number from 1 to 65536, not {value!r}", value=batch_size)
    layers, per_image = _trace(config)
    params, trainable, mult_adds, act_bytes, saved, in_flight, in_shape, out_shape = per_image
    totals = Totals(
        params=params, trainable_params=trainable, mult_adds=mult_adds, activation_bytes=act_bytes,
        input_shape=in_shape, output_shape=out_shape, batch_size=batch_size,
        weight_bytes=params * BYTES_PER_FLOAT, gradient_bytes=trainable * BYTES_PER_FLOAT, optimizer_bytes=0,
        saved_bytes=saved * batch_size, in_flight_bytes=in_flight * batch_size)
    return Summary(layers=layers.copy(), totals=totals)


def build_meta(config: ModelConfig) -> nn.Module:
    """The network on the meta device, checked against the parameter cap: shapes without weights."""
    try:
        model = _build_on_meta(config)
    except (RuntimeError, ValueError) as err:
        raise _shape_error(config, None, err) from None
    params = sum(p.numel() for p in model.parameters())
    cap = max_params()
    if params > cap:
        knobs = ", ".join(k for k, v in config.kwargs().items()
                          if not isinstance(v, (float, str)) and k not in ("in_channels", "num_classes"))
        raise ConfigError(_widest_knob(config), "this network would have {params:,} parameters, over the cap of "
                          "{cap:,} (EXPLORER_MAX_PARAMS); make it narrower or smaller ({knobs})", params=params,
                          cap=cap, knobs=knobs)
    return model


def check(config: ModelConfig) -> None:
    """Raise ConfigError if the network cannot be built or run at its resolution."""
    _trace(config)


def check_budget(config: ModelConfig) -> None:
    """Refuse, before any work, a network too deep to summarize within the budget (counted from the config)."""
    layers = config.layer_count()
    if layers > MAX_LAYERS:
        raise ConfigError(config.depth_knob or "config",
                          "this network would have about {layers:,} layers; the explorer summarizes up to "
                          "{most:,} (about 2 s of work); use fewer blocks or convolutions", layers=layers,
                          most=MAX_LAYERS)


def _trace(config: ModelConfig) -> tuple[pd.DataFrame, tuple]:
    out = _traced(config)
    if isinstance(out, ConfigError):  # a refusal, cached like a result: a bad URL costs nothing twice
        raise out.again()
    return out


class SummaryCache:
    """Summaries (and refusals) by config, the least recently used dropped first once their tables take
    more than `limit` bytes: a class server's stream of configs levels off instead of growing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[ModelConfig, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, config: ModelConfig) -> object | None:
        with self._lock:
            item = self._items.get(config)
            if item is None:
                return None
            self._items.move_to_end(config)
            return item[0]

    def put(self, config: ModelConfig, value: object) -> None:
        size = int(value[0].memory_usage(deep=True).sum()) if isinstance(value, tuple) else 1024
        with self._lock:
            if config in self._items:
                return
            self._items[config] = (value, size)
            self._bytes += size
            while self._bytes > self.limit and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE_BYTES = 16 * 2**20  # tables of about 1,500 ResNet-18 configs (about 50 MB of the process)
summaries = SummaryCache(CACHE_BYTES)


def _traced(config: ModelConfig) -> tuple[pd.DataFrame, tuple] | ConfigError:
    out = summaries.get(config)
    if out is None:
        out = _trace_new(config) if _processes is None else _trace_in_processes(config)
        summaries.put(config, out)
    return out


def _trace_new(config: ModelConfig) -> tuple[pd.DataFrame, tuple] | ConfigError:
    """A config's rows and per-image totals, or its refusal, returned as a value so that it is cached too."""
    try:
        check_budget(config)
        model = build_meta(config).eval()
        try:
            return describe(model, (config.in_channels, config.resolution, config.resolution))
        except LayerError as err:
            raise _shape_error(config, err.where, err.__cause__ or err) from None
    except ConfigError as err:
        return err


SUMMARY_SECONDS = 60        # a summary within the layer budget takes about 2 s at most
SUMMARY_BYTES = 2 * 2**30   # the meta device allocates nothing: torch and one table
_processes: Pool | None = None


def summarize_in_processes(size: int) -> None:
    """On a server: trace new configs in `size` processes of their own, so that the server's one interpreter
    keeps drawing pages meanwhile (a new config's summary was half of a knob change's work there). The cache
    stays in the server; the CLI and the tests trace where they run."""
    global _processes
    _processes = Pool(_trace_new, "summary", N_("Summarizing this network"), SUMMARY_SECONDS, SUMMARY_BYTES, size)
    for service in _processes.services:
        threading.Thread(target=_warm, args=(service,), name="explorer-warm-summary", daemon=True).start()


def _warm(service: Service) -> None:
    """A process's first trace loads torch's meta kernels (seconds): done at start, not for the first visitor,
    who pays those seconds only if this fails."""
    with contextlib.suppress(QuotaError):
        service.ask(registry.get("lenet").config)


class SummaryFailed(ConfigError):
    """A new config's summary could not be computed in a process of its own: said to the visitor, and not
    cached, so that the next visit tries again."""

    def __init__(self, error: QuotaError) -> None:
        super().__init__("model", N_("this network's summary could not be computed ({error}); try again in a moment"),
                         error=error.text())


def _trace_in_processes(config: ModelConfig) -> tuple[pd.DataFrame, tuple] | ConfigError:
    """A process killed from outside is replaced, and a fresh one answers (each pooled process may have been
    killed at once: one try each, and one more). The server never traces here instead: its first trace would
    load torch's meta kernels into the server for good (about 170 MB, measured), what a class's server lost
    each time a helper was killed. Over time or memory in its process, the summary is refused."""
    died: ServiceDied | None = None
    for _ in range(len(_processes.services) + 1):
        try:
            return _processes.ask(config)
        except ServiceDied as err:
            died = err
        except QuotaError as err:
            raise SummaryFailed(err) from None
    raise SummaryFailed(died) from None


def _build_on_meta(config: ModelConfig) -> nn.Module:
    with quiet(), building_on_meta():
        return registry.build(config)


def _widest_knob(config: ModelConfig) -> str:
    """The knob a user most likely turned too far: the first width-like field of the family."""
    for name in ("fc_width", "channels", "conv_arch", "width", "growth_rate", "fc"):
        if hasattr(config, name):
            return name
    return "resolution"


def _shape_error(config: ModelConfig, where: str | None, err: Exception) -> ConfigError:
    """Explain a failed build or forward pass: the layer, and the smallest resolution that works."""
    smallest = smallest_resolution(config)
    values = {"where": where, "detail": str(err).splitlines()[0], "resolution": config.resolution,
              "smallest": smallest, "knob": config.depth_knob}
    if smallest is None:
        return ConfigError("config", "this network cannot be built at layer {where}: {detail}" if where
                           else "this network cannot be built: {detail}", **values)
    if smallest <= config.resolution:  # the resolution is fine; something else is
        return ConfigError(config.depth_knob or "config", "this network cannot run at layer {where}: {detail}"
                           if where else "this network cannot run: {detail}", **values)
    too_small = {
        (True, True): N_("{resolution} is too small: the feature map shrinks to nothing at layer {where}; use a "
                         "resolution of at least {smallest}, or shorten {knob}"),
        (True, False): N_("{resolution} is too small: the feature map shrinks to nothing at layer {where}; use a "
                          "resolution of at least {smallest}"),
        (False, True): N_("{resolution} is too small: the feature map shrinks to nothing; use a resolution of at "
                          "least {smallest}, or shorten {knob}"),
        (False, False): N_("{resolution} is too small: the feature map shrinks to nothing; use a resolution of at "
                           "least {smallest}"),
    }
    return ConfigError("resolution", too_small[bool(where), bool(config.depth_knob)], **values)


def smallest_resolution(config: ModelConfig) -> int | None:
    """Binary search for the smallest resolution at which the network runs (None if none up to the
    resolution knob's largest)."""
    def runs(resolution: int) -> bool:
        try:
            model = _build_on_meta(replace(config, resolution=resolution))
            with quiet(), fast_meta():
                model(torch.empty(1, config.in_channels, resolution, resolution, device="meta"))
            return True
        except (RuntimeError, ValueError, ConfigError):
            return False

    lo, hi = 1, next((f.metadata.get("hi") or 1024 for f in fields(config) if f.name == "resolution"), 1024)
    if not runs(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if runs(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
