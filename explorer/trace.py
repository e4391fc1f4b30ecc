"""One pass of a module over an input, measured layer by layer: torchinfo's rows (shapes, parameters,
multiply-adds, by torchinfo's own rules; tests/test_summary.py checks every catalog network against
torchinfo.summary), the bytes the backward pass keeps, and each layer's receptive field and stride. One set of
hooks records it all; torchinfo's pass took three times as long (`python -m explorer bench summary` measures
both). On the meta device it allocates nothing; summary.py caches and bounds it per config."""

from __future__ import annotations

import contextlib
import warnings

import pandas as pd
import torch
from torch import nn

from explorer.meta import fast_meta

BYTES_PER_FLOAT = 4  # fp32 weights, gradients and saved activations
FIELD_CAP = 2**40    # receptive fields and strides stop growing here (60 halving stages would overflow int64)

COLUMNS = ["path", "depth", "type", "output_shape", "params", "trainable_params", "mult_adds",
           "activation_bytes", "kernel_size", "receptive_field", "cumulative_stride", "is_leaf"]


class LayerError(RuntimeError):
    """A forward pass failed; `where` is the leaf layer that was running."""

    def __init__(self, where: str | None) -> None:
        super().__init__(f"forward pass failed at {where}")
        self.where = where


def describe(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[pd.DataFrame, tuple]:
    """Layer rows and per-image totals of any module, on the device its parameters live on."""
    parameters = list(model.parameters())  # a shared tensor once
    x = torch.empty(1, *input_shape, device=parameters[0].device if parameters else "cpu")
    layers = _Layers(model, len(parameters))
    saved = _SavedTensors(parameters)
    try:
        with quiet(), saved, fast_meta(), torch.enable_grad():
            out = model(x)
    except Exception as err:  # whatever a user's config makes a layer raise is said, naming the layer
        raise LayerError(layers.current) from err
    finally:
        layers.remove()
    rows = layers.table()
    leaves = rows[rows.is_leaf]
    params = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    per_image = (params, trainable, int(leaves.mult_adds.sum()), int(leaves.activation_bytes.sum()),
                 saved.bytes, int(rows.activation_bytes.max()), tuple(input_shape), _shape(out))
    return rows, per_image


def _unpack_nothing(packed: None) -> None:
    raise RuntimeError("the summary's pass keeps no tensors for a backward pass")


class _SavedTensors:
    """Records the bytes autograd keeps for the backward pass during the summary's forward pass.

    Autograd does not keep every layer's output: a convolution keeps its input, a ReLU its output (one tensor,
    counted once however many layers save it), a max pool its input and int64 indices, an addition or a
    concatenation nothing. The pass runs with grad on, so autograd records what it would keep (on the meta
    device, for free). Parameters, which it keeps too, are
    counted as weights. The model is in eval mode (batch norm on one image), so dropout's masks (a byte per
    unit) are left out. `python -m explorer bench memory` measures real peaks beside the estimate.
    """

    def __init__(self, parameters: list[torch.Tensor]) -> None:
        self.parameters = parameters
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
        params, saved, held = {p.untyped_storage()._cdata for p in self.parameters}, self.saved, self.held

        def pack(t: torch.Tensor) -> None:
            storage = t.untyped_storage()
            if storage._cdata not in params:
                saved[storage._cdata] = storage.nbytes()
            held.append(t)

        self.recording = torch.autograd.graph.saved_tensors_hooks(pack, _unpack_nothing)
        self.recording.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.recording.__exit__(*exc)
        self.recording = None
        self.parameters = []
        self.held.clear()


class _Layers:
    """Forward hooks on every module: a row per call, in the order torchinfo lists them, and the (receptive
    field, cumulative stride) followed from tensor to tensor.

    A container that is never called itself (a ModuleDict) is listed once, before its first layer. A
    module's input is looked up by tensor identity; a tensor made by a functional op (F.relu, torch.cat, +)
    is matched to the newest tensor of its spatial size, and a container's output to the widest field made
    inside it, which is right for a block that concatenates its paths and ResNet's additions.
    """

    def __init__(self, model: nn.Module, parameters: int) -> None:
        self.rows: list[dict] = []
        self.tensors: list[tuple[torch.Tensor, int, int]] = []  # (tensor, rf, stride); refs keep ids unique
        self.index: dict[int, int] = {}                          # id(tensor) -> its place in self.tensors
        self.current: str | None = None
        self.listed: set[int] = set()                            # modules with a row
        self._open: dict[int, list[tuple[int, int]]] = {}        # id(module) -> (row, first tensor) per call
        self.modules: dict[int, tuple[nn.Module, str, int | None]] = {}  # id -> (module, path, parent id)
        ids: dict[str, int] = {}
        for path, m in model.named_modules():
            ids[path] = id(m)
            self.modules[id(m)] = (m, path, ids[path.rpartition(".")[0]] if path else None)
        self.root = id(model)
        self.params = _param_counts(model, parameters)
        self.handles = []
        for m, _, _ in self.modules.values():
            self.handles.append(m.register_forward_pre_hook(self._pre))
            self.handles.append(m.register_forward_hook(self._post))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def table(self) -> pd.DataFrame:
        """The rows, with a container's mult-adds summed from the layers inside it."""
        inside: dict[str, int] = {}
        for row in self.rows:
            if row["is_leaf"]:
                parts = row["path"].split(".")
                for i in range(1, len(parts)):
                    key = ".".join(parts[:i])
                    inside[key] = inside.get(key, 0) + row["mult_adds"]
        for row in self.rows:
            if not row["is_leaf"]:
                row["mult_adds"] = inside.get(row["path"], 0)
        data = {col: [row[col] for row in self.rows] for col in COLUMNS}
        for col in ("receptive_field", "cumulative_stride"):
            data[col] = pd.array(data[col], dtype="Int64")
        return pd.DataFrame(data, columns=COLUMNS)  # consolidated: each cached redraw copies it

    def _row(self, key: int) -> int:
        module, path, _ = self.modules[key]
        leaf = _is_leaf(module)
        params, trainable = self.params[key]
        k = getattr(module, "kernel_size", None)
        self.rows.append({
            "path": path, "depth": path.count(".") + 1, "type": type(module).__name__, "output_shape": (),
            "params": params, "trainable_params": trainable, "mult_adds": 0, "activation_bytes": BYTES_PER_FLOAT,
            "kernel_size": "x".join(map(str, k)) if isinstance(k, tuple | list) else (f"{k}x{k}" if k else ""),
            "receptive_field": None, "cumulative_stride": None, "is_leaf": leaf})
        self.listed.add(key)
        return len(self.rows) - 1

    def _pre(self, module: nn.Module, args: tuple) -> None:
        key = id(module)
        if key == self.root:
            return
        missing, parent = [], self.modules[key][2]
        while parent != self.root and parent not in self.listed:
            missing.append(parent)
            parent = self.modules[parent][2]
        for container in reversed(missing):
            self._row(container)
        self._open.setdefault(key, []).append((self._row(key), len(self.tensors)))
        if _is_leaf(module):
            self.current = f"{self.modules[key][1]} ({type(module).__name__})"

    def _post(self, module: nn.Module, args: tuple, out: object) -> None:
        key = id(module)
        if key == self.root:
            return
        at, start = self._open[key].pop()
        row = self.rows[at]
        size = _size(out)
        row["output_shape"] = tuple(size[1:])
        row["activation_bytes"] = _numel(size[1:]) * BYTES_PER_FLOAT
        if row["is_leaf"]:
            row["mult_adds"] = _macs(module, size)
        if not isinstance(out, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if not row["is_leaf"]:
            rf, stride = self._lookup(out, since=start, widest=True)
        else:
            rf, stride = self._lookup(x)
            rf, stride = _grow(module, x, out, rf, stride)
        rf, stride = min(rf, FIELD_CAP), min(stride, FIELD_CAP)
        self.index[id(out)] = len(self.tensors)
        self.tensors.append((out, rf, stride))
        if out.dim() == 4:
            row["receptive_field"], row["cumulative_stride"] = rf, stride

    def _lookup(self, x: torch.Tensor, since: int = 0, widest: bool = False) -> tuple[int, int]:
        at = self.index.get(id(x))
        if at is not None and at >= since:
            return self.tensors[at][1], self.tensors[at][2]
        same = (i for i in range(len(self.tensors) - 1, since - 1, -1)
                if self.tensors[i][0].dim() == 4 and self.tensors[i][0].shape[2:] == x.shape[2:])
        if not widest:  # the newest tensor of the same spatial size
            i = next(same, None)
            if i is not None:
                return self.tensors[i][1], self.tensors[i][2]
        else:
            fields = [self.tensors[i][1:] for i in same]
            if fields:
                return max(fields)
        return (1, 1) if not self.tensors else (self.tensors[-1][1], self.tensors[-1][2])


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


@contextlib.contextmanager
def quiet():
    """Torch warns about zero-sized layers on the way to a shape error we report ourselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else v


def _is_leaf(module: nn.Module) -> bool:
    """No child modules (a slot left None is none), as torchinfo counts them."""
    return not any(child is not None for child in module._modules.values())


def _size(out: object) -> list[int]:
    """An output's size as torchinfo takes it: a tensor's, or the first tensor's of a tuple or list."""
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return list(out[0].shape)
    return []


def _shape(out: object) -> tuple[int, ...]:
    return tuple(_size(out)[1:])


def _macs(module: nn.Module, size: list[int]) -> int:
    """torchinfo's multiply-adds of a layer: each weight and bias used once per output position of a
    convolution, once per output image otherwise."""
    if not size:
        return 0
    per_param = _numel([size[0], *size[2:]]) if "Conv" in type(module).__name__ else size[0]
    return sum(p.numel() * per_param for name, p in module._parameters.items()
               if p is not None and name in ("weight", "bias"))


def _param_counts(model: nn.Module, parameters: int) -> dict[int, tuple[int, int]]:
    """(parameters, trainable) in each module's subtree, summed once from the leaves up; a network that
    shares a parameter between layers is counted as torchinfo does, each shared tensor once per subtree."""
    own = {id(m): [p for p in m._parameters.values() if p is not None] for m in model.modules()}
    if sum(map(len, own.values())) != parameters:
        return {id(m): (sum(p.numel() for p in m.parameters()),
                        sum(p.numel() for p in m.parameters() if p.requires_grad)) for m in model.modules()}
    counts: dict[int, tuple[int, int]] = {}

    def count(m: nn.Module) -> tuple[int, int]:
        params = sum(p.numel() for p in own[id(m)])
        trainable = sum(p.numel() for p in own[id(m)] if p.requires_grad)
        for child in m._modules.values():
            if child is not None:
                p, t = count(child)
                params, trainable = params + p, trainable + t
        counts[id(m)] = (params, trainable)
        return counts[id(m)]

    count(model)
    return counts


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
