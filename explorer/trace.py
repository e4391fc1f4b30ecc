"""One pass of a module over an input, measured layer by layer: torchinfo's rows (shapes, parameters,
multiply-adds), the bytes the backward pass keeps, and each layer's receptive field and stride. On the meta
device it allocates nothing; summary.py caches and bounds it per config."""

from __future__ import annotations

import contextlib
import warnings

import pandas as pd
import torch
import torchinfo
from torch import nn

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
    device = next(model.parameters(), torch.empty(0)).device
    x = torch.empty(1, *input_shape, device=device)
    fields = _ReceptiveFields(model)
    saved = _SavedTensors(model)
    try:
        with quiet(), saved:
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


@contextlib.contextmanager
def quiet():
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
