"""The layer table: one torchinfo pass on the meta device (no real weights), plus receptive fields.

`summarize(config)` is cached by config, so the app redraws instantly; shape failures become a
`ConfigError` that names the resolution and the smallest one that works.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, fields, replace

import pandas as pd
import torch
import torchinfo
from torch import nn

from explorer import registry
from explorer.config import ModelConfig, max_params
from explorer.errors import ConfigError, QuotaError
from explorer.i18n import N_
from explorer.training.processes import Pool, Service

BYTES_PER_FLOAT = 4  # fp32 weights, gradients and saved activations
MAX_LAYERS = 1000    # leaf layers one summary may have: about 2 s on a 2-core CPU (tests/test_summary.py)
FIELD_CAP = 2**40    # receptive fields and strides stop growing here (60 halving stages would overflow int64)

COLUMNS = ["path", "depth", "type", "output_shape", "params", "trainable_params", "mult_adds",
           "activation_bytes", "kernel_size", "receptive_field", "cumulative_stride", "is_leaf"]


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


def _trace_in_processes(config: ModelConfig) -> tuple[pd.DataFrame, tuple] | ConfigError:
    try:
        return _processes.ask(config)
    except QuotaError:  # its process died or ran out of time: the work is bounded by the layer budget, do it here
        return _trace_new(config)


class LayerError(RuntimeError):
    """A forward pass failed; `where` is the leaf layer that was running."""

    def __init__(self, where: str | None) -> None:
        super().__init__(f"forward pass failed at {where}")
        self.where = where


def describe(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[pd.DataFrame, tuple]:
    """Layer rows and per-image totals of any module, on the device its parameters live on."""
    device = next(model.parameters(), torch.empty(0)).device
    x = torch.empty(1, *input_shape, device=device)
    fields = _ReceptiveFields(model)
    saved = _SavedTensors(model)
    try:
        with _quiet(), saved:
            info = torchinfo.summary(model, input_data=x, verbose=0, device=device,
                                     col_names=("output_size", "num_params", "mult_adds", "kernel_size"))
    except RuntimeError as err:
        raise LayerError(fields.current) from err
    finally:
        fields.remove()
        # torchinfo keeps the last pass of each model class in a module global, whether asked to cache or not
        torchinfo.torchinfo._cached_forward_pass.pop(type(model).__name__, None)
    rows = _rows(info.summary_list, fields)
    leaves = rows[rows.is_leaf]
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out_shape = tuple(info.summary_list[0].output_size[1:])
    per_image = (params, trainable, int(leaves.mult_adds.sum()), int(leaves.activation_bytes.sum()),
                 saved.bytes, int(rows.activation_bytes.max()), tuple(input_shape), out_shape)
    return rows, per_image


def _grad_on(module: nn.Module, args: tuple) -> None:
    torch.set_grad_enabled(True)


def _grad_off(module: nn.Module, args: tuple, output: object) -> None:
    torch.set_grad_enabled(False)


def _unpack_nothing(packed: None) -> None:
    raise RuntimeError("the summary's pass keeps no tensors for a backward pass")


class _SavedTensors:
    """Records the bytes autograd keeps for the backward pass during torchinfo's forward pass.

    Autograd does not keep every layer's output: a convolution keeps its input, a ReLU its output (one tensor,
    counted once however many layers save it), a max pool its input and int64 indices, an addition or a
    concatenation nothing. torchinfo runs its pass under no_grad; grad is switched on inside the model, so
    autograd records what it would keep (on the meta device, for free). Parameters, which it keeps too, are
    counted as weights. The model is in eval mode (batch norm on one image), so dropout's masks (a byte per
    unit) are left out. `python -m explorer bench memory` measures real peaks beside the estimate.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.saved: dict[int, int] = {}
        self.held: list[torch.Tensor] = []  # what the pass saved, alive until it ends

    @property
    def bytes(self) -> int:
        return sum(self.saved.values())

    def __enter__(self) -> None:
        # The pack hook outlives this pass (torch's C++ side keeps the hooks, and the graph, it ran with), so
        # it leaves nothing in the graph and holds only small collections, never the model or this object: a
        # summarized network is freed. The tensors are held in `held` until the pass ends, so that no later
        # storage takes a counted one's address and overwrites its count; then `held` is emptied.
        params, saved, held = {p.untyped_storage()._cdata for p in self.model.parameters()}, self.saved, self.held

        def pack(t: torch.Tensor) -> None:
            storage = t.untyped_storage()
            if storage._cdata not in params:
                saved[storage._cdata] = storage.nbytes()
            held.append(t)

        self.hooks = [self.model.register_forward_pre_hook(_grad_on), self.model.register_forward_hook(_grad_off)]
        self.recording = torch.autograd.graph.saved_tensors_hooks(pack, _unpack_nothing)
        self.recording.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.recording.__exit__(*exc)
        self.recording = None
        for h in self.hooks:
            h.remove()
        self.model = None
        self.held.clear()


def _rows(summary_list: list, fields: _ReceptiveFields) -> pd.DataFrame:
    """One row per module below the root, with containers' mult-adds summed from their leaves."""
    records = []
    for layer in summary_list[1:]:
        names, node = [], layer
        while node is not None and node.parent_info is not None:
            names.append(node.var_name)
            node = node.parent_info
        rf, stride = fields.by_module.get(id(layer.module), (None, None))
        records.append({
            "path": ".".join(reversed(names)),
            "depth": layer.depth,
            "type": layer.class_name,
            "output_shape": tuple(layer.output_size[1:]),
            "params": layer.num_params,
            "trainable_params": layer.trainable_params,
            "mult_adds": layer.macs if layer.is_leaf_layer else 0,
            "activation_bytes": _numel(layer.output_size[1:]) * BYTES_PER_FLOAT,
            "kernel_size": "x".join(map(str, layer.kernel_size)) if isinstance(layer.kernel_size, list)
            else (f"{layer.kernel_size}x{layer.kernel_size}" if layer.kernel_size else ""),
            "receptive_field": rf,
            "cumulative_stride": stride,
            "is_leaf": layer.is_leaf_layer,
        })
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    for i in df.index[~df.is_leaf]:
        inside = df.path.str.startswith(df.at[i, "path"] + ".") & df.is_leaf
        df.at[i, "mult_adds"] = int(df.loc[inside, "mult_adds"].sum())
    for col in ("receptive_field", "cumulative_stride"):
        df[col] = df[col].astype("Int64")
    return df


class _ReceptiveFields:
    """Forward hooks that follow (receptive field, cumulative stride) from tensor to tensor.

    A module's input is looked up by tensor identity; a tensor made by a functional op (F.relu,
    torch.cat, +) is matched to the newest tensor of its spatial size, and a container's output to
    the widest field made inside it, which is right for a block that concatenates its paths
    and ResNet's additions.
    """

    def __init__(self, model: nn.Module) -> None:
        self.tensors: list[tuple[torch.Tensor, int, int]] = []  # (tensor, rf, stride); refs keep ids unique
        self.index: dict[int, int] = {}                          # id(tensor) -> its place in self.tensors
        self.by_module: dict[int, tuple[int, int]] = {}
        self.current: str | None = None
        self._starts: dict[int, int] = {}
        names = {id(m): n for n, m in model.named_modules()}
        self.handles = []
        for m in model.modules():
            self.handles.append(m.register_forward_pre_hook(self._pre(names.get(id(m), ""))))
            self.handles.append(m.register_forward_hook(self._post))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _lookup(self, x: torch.Tensor, since: int = 0, widest: bool = False) -> tuple[int, int]:
        at = self.index.get(id(x))
        if at is not None and at >= since:
            return self.tensors[at][1], self.tensors[at][2]
        if not widest:  # the newest tensor of the same spatial size
            for t, rf, s in reversed(self.tensors[since:]):
                if t.dim() == 4 and t.shape[2:] == x.shape[2:]:
                    return rf, s
        else:
            same = [(rf, s) for t, rf, s in self.tensors[since:] if t.dim() == 4 and t.shape[2:] == x.shape[2:]]
            if same:
                return max(same)
        return (1, 1) if not self.tensors else (self.tensors[-1][1], self.tensors[-1][2])

    def _pre(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self._starts[id(module)] = len(self.tensors)
            if not any(module.children()):
                self.current = f"{name} ({type(module).__name__})"
        return hook

    def _post(self, module: nn.Module, args: tuple, out: object) -> None:
        if not isinstance(out, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if any(module.children()):
            rf, stride = self._lookup(out, since=self._starts[id(module)], widest=True)
        else:
            rf, stride = self._lookup(x)
            rf, stride = _grow(module, x, out, rf, stride)
        rf, stride = min(rf, FIELD_CAP), min(stride, FIELD_CAP)
        self.index[id(out)] = len(self.tensors)
        self.tensors.append((out, rf, stride))
        if out.dim() == 4:
            self.by_module[id(module)] = (rf, stride)


def _grow(module: nn.Module, x: torch.Tensor, out: torch.Tensor, rf: int, stride: int) -> tuple[int, int]:
    """Receptive field and cumulative stride after one convolution or pooling layer."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k = _first(module.kernel_size)
        s = _first(module.stride)
        d = _first(getattr(module, "dilation", 1))
        return rf + (d * (k - 1)) * stride, stride * s
    if isinstance(module, nn.AdaptiveAvgPool2d) and out.dim() == 4:
        size_in, size_out = x.shape[-1], out.shape[-1]
        s = size_in // size_out
        k = size_in - (size_out - 1) * s
        return rf + (k - 1) * stride, stride * s
    return rf, stride


def _build_on_meta(config: ModelConfig) -> nn.Module:
    with torch.device("meta"), _quiet():
        return registry.build(config)


@contextlib.contextmanager
def _quiet():
    """Torch warns about zero-sized layers on the way to a shape error we report ourselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else v


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


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
            with _quiet():
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
