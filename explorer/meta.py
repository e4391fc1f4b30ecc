"""The meta device without torch's slowest meta kernels: a summary's pass in milliseconds.

On the meta device torch computes shapes, not values, but a few kernels do it in Python reference code:
`uniform_` (every layer's initialization, 0.2 ms a call), `relu` (0.3 ms), `native_batch_norm` (0.7 ms),
additions, concatenations, convolutions and dense layers (0.05 to 0.4 ms): about four fifths of a ResNet-18
summary. `fast_meta()` answers those from their inputs' shapes, exactly as the kernels would
(tests/test_summary.py checks every layer of every catalog network both ways), and passes everything else,
and every tensor that is not on the meta device, to torch. Autograd runs above it, so what a pass
saves for the backward pass is recorded as before.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Initializers: a meta tensor holds no values, so there is nothing to fill (skipped whole, the fan-in
# arithmetic around the fill was half of building a network on the meta device).
INITS = {torch.nn.init.uniform_, torch.nn.init.normal_, torch.nn.init.trunc_normal_, torch.nn.init.constant_,
         torch.nn.init.ones_, torch.nn.init.zeros_, torch.nn.init.kaiming_uniform_, torch.nn.init.kaiming_normal_,
         torch.nn.init.xavier_uniform_, torch.nn.init.xavier_normal_, torch.nn.init.orthogonal_}
CONSTRUCTORS = _device_constructors()  # the functions torch.device("meta") puts on the meta device
FILLS = {aten.uniform_.default, aten.normal_.default, aten.fill_.Scalar, aten.zero_.default,
         aten.bernoulli_.float, aten.exponential_.default}


def fast_meta() -> TorchDispatchMode:
    """Meta kernels answered from shapes, for a pass over a network already on the meta device."""
    return _FastKernels()


@contextlib.contextmanager
def building_on_meta() -> Iterator[None]:
    """What `torch.device("meta")` does for a network's construction, with the fast kernels, and without its
    initializers: one mode in Python instead of two for every torch call the constructors make."""
    _building.on = True
    try:
        with _OnMeta(), _FastKernels():
            yield
    finally:
        _building.on = False


# torch's layers initialize themselves in reset_parameters, whose fan-in arithmetic goes through the modes
# above call by call (a sixth of a GoogLeNet summary): skipped whole while this thread builds on the meta
# device, where there is nothing to initialize; any other build, in any thread, runs it as torch wrote it
_building = threading.local()


def _unless_building_on_meta(reset: Callable[[nn.Module], None]) -> Callable[[nn.Module], None]:
    @functools.wraps(reset)
    def reset_parameters(self: nn.Module) -> None:
        if not getattr(_building, "on", False):
            reset(self)
    return reset_parameters


for _layer in (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase):
    _layer.reset_parameters = _unless_building_on_meta(_layer.reset_parameters)


class _OnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CONSTRUCTORS:
            if kwargs.get("device") is None:
                kwargs["device"] = "meta"
        elif func in INITS:
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


class _FastKernels(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        kwargs = kwargs or {}
        if func in FILLS and isinstance(x, torch.Tensor) and x.is_meta:
            return x
        rule = RULES.get(func)
        out = rule(*args, **kwargs) if rule is not None else None
        return out if out is not None else func(*args, **kwargs)


# Each rule answers only the plain case (float32, laid out densely, shapes that fit) and returns None for
# anything else, which torch's own kernel then answers, or refuses with its own message.

def _dense(x: torch.Tensor) -> bool:
    """Where a clone has the layout torch's elementwise kernels give their output: float32, laid out densely
    in either memory format."""
    return x.dtype == torch.float32 and (x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(
        memory_format=torch.channels_last)))


def _plain(*tensors: object) -> bool:
    return all(isinstance(t, torch.Tensor) and t.is_meta and t.dtype == torch.float32 and t.is_contiguous()
               for t in tensors)


def _relu(x: torch.Tensor) -> torch.Tensor | None:
    return x.clone() if x.is_meta and _dense(x) else None


def _add(a: torch.Tensor, b: object, alpha: float = 1) -> torch.Tensor | None:
    same = isinstance(b, torch.Tensor) and a.is_meta and b.is_meta and b.shape == a.shape and b.stride() == a.stride()
    return a.clone() if same and b.dtype == a.dtype and _dense(a) else None


def _batch_norm(x: torch.Tensor, *rest: object) -> tuple[torch.Tensor, ...] | None:
    if not x.is_meta or not _dense(x) or x.dim() < 2:
        return None
    stats = torch.empty(x.shape[1], dtype=x.dtype, device=x.device)
    return x.clone(), stats, stats.clone()


def _convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups) -> torch.Tensor | None:
    if (transposed or x.dim() != 4 or not _plain(x, w) or x.shape[1] != w.shape[1] * groups
            or (b is not None and (not _plain(b) or tuple(b.shape) != (w.shape[0],)))
            or not len(stride) == len(padding) == len(dilation) == 2):
        return None
    size = [(x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
            for i in range(2)]
    if min(size) < 1:
        return None
    return torch.empty((x.shape[0], w.shape[0], *size), device=x.device)


def _cat(tensors: list, dim: int = 0) -> torch.Tensor | None:
    if not tensors or not _plain(*tensors) or len({t.dim() for t in tensors}) != 1 or tensors[0].dim() == 0:
        return None
    dim = dim % tensors[0].dim()
    first = list(tensors[0].shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != first[:dim] + first[dim + 1:] for t in tensors):
        return None
    first[dim] = sum(t.shape[dim] for t in tensors)
    return torch.empty(first, device=tensors[0].device)


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, beta: float = 1, alpha: float = 1
           ) -> torch.Tensor | None:
    fits = a.dim() == b.dim() == 2 and a.shape[1] == b.shape[0] and tuple(bias.shape) == (b.shape[1],)
    same = all(isinstance(t, torch.Tensor) and t.is_meta and t.dtype == torch.float32 for t in (bias, a, b))
    return torch.empty((a.shape[0], b.shape[1]), device=a.device) if fits and same else None


def _max_pool2d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False) -> tuple | None:
    pair = [(v if isinstance(v, (list, tuple)) else [v]) for v in (kernel_size, stride or kernel_size, padding,
                                                                    dilation)]
    if x.dim() != 4 or not _plain(x) or any(len(v) not in (1, 2) for v in pair):
        return None
    k, s, p, d = ([v[0], v[-1]] for v in pair)
    size = []
    for i in range(2):
        n = x.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1 + ((s[i] - 1) if ceil_mode else 0)
        out = n // s[i] + 1
        if ceil_mode and (out - 1) * s[i] >= x.shape[2 + i] + p[i]:
            out -= 1
        if n < 0 or out < 1 or p[i] * 2 > k[i] or min(k[i], s[i], d[i]) < 1:
            return None
        size.append(out)
    shape = (x.shape[0], x.shape[1], *size)
    return torch.empty(shape, device=x.device), torch.empty(shape, dtype=torch.int64, device=x.device)


RULES = {aten.relu.default: _relu, aten.add.Tensor: _add, aten.native_batch_norm.default: _batch_norm,
         aten.convolution.default: _convolution, aten.cat.default: _cat, aten.addmm.default: _addmm,
         aten.max_pool2d_with_indices.default: _max_pool2d}
