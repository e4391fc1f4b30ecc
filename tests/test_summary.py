"""The layer table: figures cross-checked against torchinfo and by hand, errors that name the knob."""

import dataclasses
import math
import os
import signal

import pandas as pd
import pytest
import torch
import torchinfo
from torch import nn

from explorer import registry
from explorer.config import with_overrides
from explorer.errors import ConfigError
from explorer.summary import summarize
from explorer.trace import COLUMNS, describe

MODELS = registry.list_models()


@pytest.mark.parametrize("name", MODELS)
def test_totals_agree_with_torchinfo_and_the_rows(name):
    config = registry.get(name).config
    s = summarize(config, batch_size=32)
    with torch.device("meta"):
        model = registry.build(config)
    stats = torchinfo.summary(model, input_size=(1, 1, config.resolution, config.resolution),
                              device="meta", verbose=0)
    assert s.totals.params == stats.total_params == sum(p.numel() for p in model.parameters())
    assert s.totals.mult_adds == stats.total_mult_adds
    leaves = s.layers[s.layers.is_leaf]
    assert leaves.params.sum() == s.totals.params
    assert list(s.layers.columns) == COLUMNS
    top = s.layers[s.layers.depth == 1]
    assert top.params.sum() == s.totals.params  # containers hold their children's parameters
    assert top.mult_adds.sum() == s.totals.mult_adds
    assert s.totals.output_shape == (config.num_classes,)
    t = s.totals
    assert t.training_bytes == (t.weight_bytes + t.gradient_bytes + t.optimizer_bytes + t.saved_bytes
                                + t.in_flight_bytes)
    assert t.in_flight_bytes >= 32 * 4 * max(math.prod(r.output_shape) for r in leaves.itertuples())
    # autograd keeps less than every layer's output (a ReLU's input is not kept), more than the input alone
    assert 32 * 4 * config.resolution ** 2 < t.saved_bytes < 32 * (leaves.activation_bytes.sum() * 2)


def torchinfo_rows(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple]:
    """torchinfo.summary's own rows, as the layer table writes them (a container never called itself is
    listed by torchinfo each time the pass comes back into it; the table lists it once)."""
    info = torchinfo.summary(model, input_data=torch.empty(1, *input_shape, device="meta"), device="meta",
                             verbose=0, col_names=("output_size", "num_params", "mult_adds", "kernel_size"))
    rows, uncalled = [], set()
    for layer in info.summary_list[1:]:
        if not layer.executed:
            if id(layer.module) in uncalled:
                continue
            uncalled.add(id(layer.module))
        names, node = [], layer
        while node.parent_info is not None:
            names.append(node.var_name)
            node = node.parent_info
        k = layer.kernel_size
        rows.append((".".join(reversed(names)), layer.depth, layer.class_name, tuple(layer.output_size[1:]),
                     layer.num_params, layer.trainable_params, layer.macs if layer.is_leaf_layer else None,
                     "x".join(map(str, k)) if isinstance(k, list) else (f"{k}x{k}" if k else ""),
                     layer.is_leaf_layer))
    return rows


def exercise_configs() -> list[tuple[str, object]]:
    from explorer import exercises

    configs = {(name, registry.get(name).config) for name in MODELS}
    for exercise in exercises.EXERCISES:
        for setup in exercise.setups:
            configs.add((setup.model, setup.built()))
    return sorted(configs, key=repr)


@pytest.mark.parametrize("name, config", exercise_configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_row_is_torchinfos(name, config):
    """The layer table's own pass against torchinfo.summary on the same network: every network of the catalog
    and of the exercises, every row and column torchinfo has."""
    with torch.device("meta"):
        model = registry.build(config).eval()
    ours = summarize(config).layers
    mine = [(r.path, r.depth, r.type, r.output_shape, r.params, r.trainable_params,
             r.mult_adds if r.is_leaf else None, r.kernel_size, r.is_leaf) for r in ours.itertuples()]
    assert mine == torchinfo_rows(model, (config.in_channels, config.resolution, config.resolution))


def test_lenet_receptive_fields_by_hand():
    rows = summarize(registry.get("lenet").config).layers.set_index("path")
    # conv 5x5 -> 5; pool 2/2 -> 6, stride 2; conv 5x5 -> 6 + 4*2 = 14; pool 2/2 -> 16, stride 4
    assert rows.loc["0", "receptive_field"] == 5
    assert (rows.loc["2", "receptive_field"], rows.loc["2", "cumulative_stride"]) == (6, 2)
    assert rows.loc["3", "receptive_field"] == 14
    assert (rows.loc["5", "receptive_field"], rows.loc["5", "cumulative_stride"]) == (16, 4)
    assert pd.isna(rows.loc["7", "receptive_field"])  # a dense layer has no receptive field


def test_inception_takes_its_widest_path_and_resnet_its_conv_path():
    g = summarize(registry.get("googlenet").config).layers.set_index("path")
    before = g.loc["1.4", "receptive_field"]         # b2's last max pool
    stride = g.loc["1.4", "cumulative_stride"]
    assert g.loc["2.0", "receptive_field"] == before + 4 * stride  # the 5x5 path wins
    r = summarize(registry.get("resnet18").config).layers.set_index("path")
    assert r.loc["1.0", "receptive_field"] == r.loc["1.0.conv2", "receptive_field"]


def test_shared_parameters_count_once():
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    _, (params, *_rest) = describe(model, (8,))
    assert params == 72


def test_summaries_are_cached_but_callers_get_their_own_table():
    config = registry.get("lenet").config
    a = summarize(config)
    a.layers.loc[:, "params"] = -1
    assert summarize(config).layers.params.sum() == 61_706


@pytest.mark.parametrize("name, overrides, knob, text", [
    ("vgg11", {"resolution": "28"}, "resolution", "use a resolution of at least 32, or shorten conv_arch"),
    ("vgg11", {"conv_arch": "((1, 64),) * 6", }, "conv_arch", "cannot read"),
    ("vgg11", {"conv_arch": "[[1,64],[1,64],[1,64],[1,64],[1,64],[1,64]]", "resolution": "32"}, "resolution",
     "use a resolution of at least 64"),
    ("vgg11", {"ratio": "128"}, "ratio", "use a ratio of at most 64"),
    ("vgg11", {"conv_arch": "[1, 2, 3]"}, "conv_arch", "2 numbers"),
    ("vgg11", {"conv_arch": "[[0, 64]]"}, "conv_arch", "at least 1"),
    ("resnet18", {"blocks": "(2, -1, 2, 2)"}, "blocks", "at least 1"),
    ("resnet18", {"channels": "(64, 128)"}, "blocks", "one channel count per stage"),
    ("densenet", {"growth_rate": "0"}, "growth_rate", "at least 1"),
    ("googlenet", {"width": "'wide'"}, "width", "must be a number"),
    ("lenet", {"norm": "batch"}, "norm", "one of none, scratch, builtin"),
    ("alexnet", {"resolution": "32"}, "resolution", "too small"),
    ("vgg11", {"fc_width": "16384", "resolution": "1024"}, "fc_width", "over the cap"),
    ("vgg11", {"depth": "3"}, "depth", "not a knob"),
])
def test_impossible_configs_name_the_knob(name, overrides, knob, text):
    with pytest.raises(ConfigError) as err:
        summarize(with_overrides(registry.get(name).config, overrides))
    assert err.value.knob == knob
    assert text in str(err.value)
    assert "Traceback" not in str(err.value)


def test_batch_size_is_validated():
    with pytest.raises(ConfigError, match="batch_size"):
        summarize(registry.get("lenet").config, batch_size=0)


@pytest.mark.parametrize("config", [
    registry.get("densenet").config.__class__(num_convs_in_dense_blocks=(128,) * 8, growth_rate=1),
    registry.get("resnet18").config.__class__(blocks=(64,) * 12, channels=(1,) * 12),
    registry.get("vgg11").config.__class__(conv_arch=((16, 8),) * 64, resolution=1024),
])
def test_a_config_past_the_budget_is_refused_before_any_work_and_the_refusal_is_cached(config):
    import time

    from explorer.summary import MAX_LAYERS

    assert config.layer_count() > MAX_LAYERS
    for _ in range(2):
        start = time.perf_counter()
        with pytest.raises(ConfigError) as err:
            summarize(config)
        assert time.perf_counter() - start < 0.05  # counted from the config: nothing was built
        assert err.value.knob == config.depth_knob and "layers" in err.value.message


@pytest.mark.parametrize("name", registry.list_models())
def test_the_layer_count_is_exact_for_every_catalog_model(name):
    """With every value of its switches too (ResNet's residual and norm, DenseNet's norm)."""
    import dataclasses

    from explorer.config import knob_info, literal_choices

    default = registry.get(name).config
    switches = [(info["name"], value) for info in knob_info(default)
                for value in (literal_choices(info["type"]) or ((True, False) if info["type"] is bool else ()))]
    configs = [default]
    for knob, value in switches:
        try:
            configs.append(dataclasses.replace(default, **{knob: value}))
        except ConfigError:  # a combination the family refuses, saying why (LeNet's mean-only norm without scratch)
            continue
    for config in configs:
        if config.layer_count():  # the families whose depth is a knob
            assert config.layer_count() == int(summarize(config).layers.is_leaf.sum()), config


def test_sixty_stages_are_refused_with_a_reason_not_an_overflow():
    from explorer.models.resnet import ResNetConfig

    with pytest.raises(ConfigError, match="at most 12"):
        ResNetConfig(blocks=(1,) * 60, channels=(1,) * 60)
    deep = summarize(ResNetConfig(blocks=(1,) * 12, channels=(4,) * 12, resolution=1024))
    assert deep.layers.cumulative_stride.max() > 2**11  # the fields still grow, as integers


@pytest.mark.parametrize("name", ["googlenet", "resnet18", "densenet"])
def test_the_memory_estimate_is_within_25_percent_of_a_real_peak_at_book_settings(name):
    """What the run manager admits a run by, against the peak of real steps (bench memory has every preset)."""
    from explorer.bench import measure_peak_bytes
    from explorer.training.admission import estimate_bytes
    from explorer.training.recipes import preset

    p = preset(name, "book")
    estimate = estimate_bytes(p.config, p.settings)
    peak = measure_peak_bytes(p.config, p.settings.batch_size)
    assert peak > 2**30  # activations, not torch's runtime, dominate here
    assert 0.75 < estimate / peak < 1.25, (estimate / 2**30, peak / 2**30)


def test_summaries_free_their_networks_and_the_cache_levels_off(monkeypatch):
    """A class server summarizes config after config: each network is freed once summarized (the saved-tensor
    hook keeps none of it) and the cache drops the least recently used tables past its size."""
    import gc
    import os
    import weakref

    from explorer.summary import build_meta, summaries
    from explorer.trace import describe

    model = build_meta(registry.get("resnet18").config).eval()
    describe(model, (1, 96, 96))
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None, "a summarized network outlived its summary"

    def rss() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    monkeypatch.setattr(summaries, "limit", 2 * 2**20)
    base = registry.get("resnet18").config
    for step in range(300):
        summarize(dataclasses.replace(base, resolution=40 + step))
        if step == 149:
            gc.collect()
            half = rss()
    gc.collect()
    assert rss() - half < 50 * 2**20, f"grew {(rss() - half) / 2**20:.0f} MB over the second 150 configs"
    assert summaries.bytes <= 2 * 2**20 and len(summaries) < 300  # the oldest were dropped
    summaries.clear()


@pytest.mark.parametrize("name", ["vgg11", "resnet18", "googlenet", "densenet"])
def test_the_saved_bytes_match_a_pass_that_keeps_every_saved_tensor(name):
    """The memory pass lets go of what it counted; counted against a plain pass that keeps every tensor
    autograd saves (so no storage is freed and its address reused mid-pass)."""
    from explorer.summary import build_meta

    config = registry.get(name).config
    model = build_meta(config).train(False)
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    kept: list[torch.Tensor] = []
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        model(torch.empty(1, config.in_channels, config.resolution, config.resolution, device="meta"))
    storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in kept}
    expected = sum(n for key, n in storages.items() if key not in params)
    assert summarize(config, batch_size=1).totals.saved_bytes == expected



def test_a_server_traces_new_configs_in_processes_of_its_own(monkeypatch):
    """`python -m explorer serve` traces new configs beside the server: the same table, totals and refusals as
    here, while the server's interpreter does none of the work, not even when a process fails: a process that
    is killed is replaced by a fresh one that answers; a summary over its process's time is said, not
    cached."""
    from explorer import summary

    config = dataclasses.replace(registry.get("resnet18").config, channels=(48, 120, 208, 242))
    other, third = (dataclasses.replace(config, channels=(c, 120, 208, 242)) for c in (50, 52))
    bad = dataclasses.replace(registry.get("lenet").config, resolution=8)
    here, refused_here = summarize(config), pytest.raises(ConfigError, summarize, bad).value
    params = {c: summarize(c).totals.params for c in (other, third)}
    summary.summaries.clear()
    monkeypatch.setattr(summary, "_processes", None)
    summary.summarize_in_processes(2)
    try:
        for _ in summary._processes.services:  # each in turn, once its warm-up has started it
            summary._processes.ask(registry.get("lenet").config)
        monkeypatch.setattr(summary, "build_meta", None)  # this process can no longer trace anything
        there = summarize(config)
        pd.testing.assert_frame_equal(there.layers, here.layers)
        assert there.totals == here.totals
        refused_there = pytest.raises(ConfigError, summarize, bad).value
        assert (refused_there.knob, refused_there.text()) == (refused_here.knob, refused_here.text())

        for service in summary._processes.services:  # a helper killed (an admin, the kernel's OOM killer):
            os.kill(service.pid, signal.SIGKILL)          # a fresh process traces it, the server still nothing
        assert summarize(other).totals.params == params[other]
        for service in summary._processes.services:
            service.seconds = 0  # every request now runs out of time, in every fresh process too
        failed = pytest.raises(ConfigError, summarize, third).value
        assert failed.knob == "model" and "could not be computed" in failed.text()
        for service in summary._processes.services:
            service.seconds = summary.SUMMARY_SECONDS
        assert summarize(third).totals.params == params[third]  # the failure was not cached
    finally:
        summary._processes.stop()
        summary.summaries.clear()


def layer_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple]:
    """Every module's output as torch laid it out: shape, strides and type, in the order they ran."""
    seen = []

    def record(module, args, out):
        outs = out if isinstance(out, tuple) else (out,)
        seen.append((type(module).__name__, [(tuple(t.shape), t.stride(), t.dtype) for t in outs]))

    handles = [m.register_forward_hook(record) for m in model.modules()]
    with torch.enable_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("name, config", exercise_configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_fast_meta_answers_as_torchs_own_kernels(name, config):
    """explorer.meta's shortcuts against torch's meta kernels: the same parameters when a network is built,
    and every layer's output, shape, layout and type, in a forward pass (channels-last too)."""
    from explorer.meta import building_on_meta, fast_meta

    with torch.device("meta"):
        plain = registry.build(config).eval()
    with building_on_meta():
        fast = registry.build(config).eval()
    assert [(n, p.shape, p.device) for n, p in plain.named_parameters()] == \
        [(n, p.shape, p.device) for n, p in fast.named_parameters()]
    x = torch.empty(2, config.in_channels, config.resolution, config.resolution, device="meta")
    for layout in (torch.contiguous_format, torch.channels_last):
        expected = layer_outputs(plain, x.contiguous(memory_format=layout))
        with fast_meta():
            assert layer_outputs(plain, x.contiguous(memory_format=layout)) == expected


def test_only_a_build_on_the_meta_device_skips_the_layers_initialization_whatever_runs_beside_it():
    """explorer.meta skips reset_parameters while a thread builds on the meta device: a network built in
    another thread meanwhile, or in this one afterwards, is initialized as torch would."""
    import threading

    from explorer.meta import building_on_meta

    def built() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
        return [*model.parameters(), *model.buffers()]

    reference, beside = built(), []
    with building_on_meta():
        on_meta = built()
        other = threading.Thread(target=lambda: beside.extend(built()))
        other.start()
        other.join()
    assert all(t.is_meta for t in on_meta)
    for tensors in (beside, built()):
        assert all(not t.is_meta and torch.equal(t, r) for t, r in zip(tensors, reference, strict=True))
    assert reference[0].abs().sum() > 0 and reference[0].std() > 0  # Kaiming-uniform weights, not zeros
    assert torch.equal(reference[2], torch.ones(4)) and torch.equal(reference[-2], torch.ones(4))  # BN scale, var


def test_fast_meta_leaves_torchs_refusals_and_other_devices_alone():
    from explorer.meta import fast_meta

    conv = nn.Conv2d(3, 8, kernel_size=5, device="meta")
    with fast_meta(), pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        conv(torch.empty(1, 3, 4, 4, device="meta"))
    with fast_meta(), pytest.raises(RuntimeError):
        conv(torch.empty(1, 4, 8, 8, device="meta"))  # the wrong channels
    with fast_meta():
        y = torch.relu(torch.tensor([-1.0, 2.0]))
        pooled = nn.functional.max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
    assert y.tolist() == [0.0, 2.0] and pooled.flatten().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_fast_meta_pools_and_convolves_every_small_shape_as_torch_does():
    """Sizes, strides, padding, dilation and ceil mode swept: the same output shape, or a refusal both ways."""
    import itertools
    from functools import partial

    from explorer.meta import fast_meta

    def shape(fn):
        try:
            return tuple(fn().shape)
        except RuntimeError:
            return "refused"

    for size, k, s, p, d, ceil in itertools.product(range(1, 8), range(1, 4), range(1, 4), range(3), (1, 2),
                                                    (False, True)):
        x = torch.empty(1, 2, size, size + 1, device="meta")
        w = torch.empty(3, 2, k, k, device="meta")
        pool = partial(nn.functional.max_pool2d, x, k, s, p, d, ceil_mode=ceil)
        conv = partial(nn.functional.conv2d, x, w, None, s, p, d)
        for fn in (pool, conv):
            expected = shape(fn)
            with fast_meta():
                assert shape(fn) == expected, (size, k, s, p, d, ceil, fn is pool)
