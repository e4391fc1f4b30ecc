"""The knobs the chapter's exercises turn: each changes exactly the layers it names (the networks the exercises
name are checked against independent builds in test_models)."""

import pytest
import torch
from torch import nn

from explorer import registry
from explorer.codegen import export_code
from explorer.errors import ConfigError
from explorer.summary import summarize


def build(name: str, **changes) -> nn.Module:
    return registry.build(registry.config_from(name, changes))


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet_modernised_max_pooling_relu_dropout_and_a_third_convolution():
    book = build("lenet")
    modern = build("lenet", pool="max", activation="relu", dropout=0.5, channels=(6, 16, 32), kernel=3)
    assert count(book, nn.AvgPool2d) == 2 and count(book, nn.Sigmoid) == 4 and count(book, nn.Dropout) == 0
    assert count(modern, nn.MaxPool2d) == 3 and count(modern, nn.AvgPool2d) == 0
    assert count(modern, nn.ReLU) == 5 and count(modern, nn.Sigmoid) == 0 and count(modern, nn.Dropout) == 2
    assert [m.kernel_size for m in modern.modules() if isinstance(m, nn.Conv2d)] == [(3, 3)] * 3
    assert modern(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert params(build("lenet", fc=(120,))) == params(book) - (120 * 84 + 84) - (84 * 10 + 10) + (120 * 10 + 10)


def test_batch_norm_where_it_goes_without_biases_and_with_frozen_scale_and_shift():
    every, convs = build("lenet-bn"), build("lenet-bn", norm_at="convolutions")
    assert count(every, nn.BatchNorm2d) == 2 and count(every, nn.BatchNorm1d) == 2
    assert count(convs, nn.BatchNorm2d) == 2 and count(convs, nn.BatchNorm1d) == 0
    unbiased = build("lenet-bn", bias=False)
    layers = [m for m in unbiased.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m.bias is None for m in layers] == [True, True, True, True, False]  # the output layer keeps its own
    assert params(every) - params(unbiased) == 6 + 16 + 120 + 84
    frozen = build("lenet-bn", affine=False)
    assert params(every) - params(frozen) == 2 * (6 + 16 + 120 + 84)


def test_a_lite_batch_norm_removes_only_the_mean_or_only_the_variance():
    from explorer.models.lenet import BatchNorm

    x = torch.randn(64, 3) * 5 + 2
    mean_only, var_only = BatchNorm(3, 2, stats="mean"), BatchNorm(3, 2, stats="variance")
    assert torch.allclose(mean_only(x), x - x.mean(0), atol=1e-5)
    assert torch.allclose(var_only(x), x / torch.sqrt(x.var(0, unbiased=False) + 1e-5), atol=1e-5)
    with pytest.raises(ConfigError, match="set norm to scratch") as err:
        registry.config_from("lenet-bn", {"norm_stats": "mean"})
    assert err.value.knob == "norm_stats"
    assert registry.config_from("lenet-bn-scratch", {"norm_stats": "mean"}).norm_stats == "mean"


@pytest.mark.parametrize("name, convs, dense", [("alexnet", 5, 2), ("vgg11", 8, 2), ("nin", 12, 0)])
def test_batch_norm_on_every_family_follows_each_convolution_and_hidden_dense_layer(name, convs, dense):
    model = build(name, norm="builtin")
    assert count(model, nn.BatchNorm2d) == convs and count(model, nn.BatchNorm1d) == dense


def test_googlenet_with_batch_norm_and_the_5x5_path_factorised():
    normed = build("googlenet", norm="builtin")
    assert count(normed, nn.BatchNorm2d) == count(normed, nn.Conv2d)
    book, factorised = build("googlenet"), build("googlenet", factorize=True)
    for block in (m for m in factorised.modules() if type(m).__name__ == "Inception"):
        assert block.p3_2.kernel_size == block.p3_3.kernel_size == (3, 3)
        assert block.p3_2.out_channels == block.p3_1.out_channels  # the reduced width, then the path's own
    assert params(factorised) < params(book)  # two 3x3 see as far as one 5x5, with fewer weights
    small = registry.config_from("googlenet", {"stem": "small", "resolution": 28})
    assert summarize(small).layers.output_shape.iloc[-1] == (10,)


def test_an_alexnet_that_fits_28x28_images():
    config = registry.config_from("alexnet", {"first_kernel": 3, "first_stride": 1, "resolution": 28})
    assert registry.build(config)(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError) as err:
        summarize(registry.config_from("alexnet", {"resolution": 28}))
    assert err.value.knob == "resolution"  # the book's first layer leaves nothing of 28 pixels


def test_nin_blocks_with_one_or_three_1x1_convolutions_3x3_ones_or_a_dense_head():
    book = build("nin")
    assert count(build("nin", num_1x1=1), nn.Conv2d) == 8 and count(book, nn.Conv2d) == 12
    assert count(build("nin", num_1x1=3), nn.Conv2d) == 16
    three = build("nin", kernel_1x1=3)
    assert params(three) - params(book) == 8 * sum(c * c for c in (96, 96, 256, 256, 384, 384, 10, 10))
    dense = build("nin", head="dense")
    assert count(dense, nn.AdaptiveAvgPool2d) == 0 and params(dense) - params(book) == 10 * 5 * 5 * 10 + 10
    with pytest.raises(ConfigError, match="must be odd"):
        registry.config_from("nin", {"kernel_1x1": 2})


def test_a_family_of_nins_from_vggs_decisions_is_a_list_of_widths():
    def first_convs(model: nn.Module) -> list[tuple]:
        return [(block[0].kernel_size, block[0].stride) for block in model if isinstance(block, nn.Sequential)]

    assert first_convs(build("nin"))[:3] == [((11, 11), (4, 4)), ((5, 5), (1, 1)), ((3, 3), (1, 1))]  # the book's
    family = [build("nin", design="vgg", channels=widths, resolution=96, head="dense")
              for widths in ((64, 128, 256), (64, 128, 256, 512), (64, 128, 256, 512, 512))]
    for model, blocks in zip(family, (3, 4, 5), strict=True):
        assert first_convs(model) == [((3, 3), (1, 1))] * (blocks + 1)  # and the class block's
        assert [m.kernel_size for m in model if isinstance(m, nn.MaxPool2d)] == [2] * blocks  # each halves the map
        assert model[-1].in_features == 10 * (96 >> blocks) ** 2  # the dense head sized from the halvings
        assert model(torch.rand(2, 1, 96, 96)).shape == (2, 10)
    assert params(family[0]) < params(family[1]) < params(family[2])
    with pytest.raises(ConfigError) as err:
        registry.config_from("nin", {"channels": (8,) * 7})
    assert err.value.knob == "channels"


def test_pre_activation_blocks_start_on_batch_norm_and_end_on_a_convolution_in_the_layer_table():
    layers = summarize(registry.config_from("resnet18", {"preact": True})).layers
    leaves = layers[layers.is_leaf]
    block = leaves[leaves.path.str.startswith("1.0.")]  # the first stage's first block
    assert list(block.type) == ["BatchNorm2d", "Conv2d", "BatchNorm2d", "Conv2d"]
    head = list(leaves.type)[-5:]
    assert head == ["BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    post = summarize(registry.get("resnet18").config).layers
    assert list(post[post.is_leaf & post.path.str.startswith("1.0.")].type) == ["Conv2d", "BatchNorm2d", "Conv2d",
                                                                              "BatchNorm2d"]


def test_bottleneck_blocks_and_the_plain_network_refused_with_them():
    model = build("resnet18", block="bottleneck", channels=(256, 512, 1024, 2048))
    kernels = [m.kernel_size for m in model[1][0].modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [(1, 1), (3, 3), (1, 1), (1, 1)]  # narrow, 3x3, widen, and the shortcut
    with pytest.raises(ConfigError) as err:
        registry.config_from("resnet50", {"residual": False})
    assert err.value.knob == "residual"


def test_densenet_b_layers_and_max_pooling_transitions():
    b = build("densenet", bottleneck=True)
    assert [m.kernel_size for m in b[1].net[0].modules() if isinstance(m, nn.Conv2d)] == [(1, 1), (3, 3)]
    assert b[1].net[0][2].out_channels == 4 * 32
    pooled = build("densenet", pool="max")
    assert count(pooled, nn.MaxPool2d) == 1 + 3 and count(pooled, nn.AvgPool2d) == 0  # the stem's and three


def test_a_memory_efficient_densenet_computes_the_same_and_keeps_less_for_the_backward_pass():
    book = registry.config_from("densenet121", {"resolution": 64})
    lean = registry.config_from("densenet121", {"resolution": 64, "memory_efficient": True})
    torch.manual_seed(0)
    a = registry.build(book).train()
    b = registry.build(lean).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, 64, 64)
    ya, yb = a(x), b(x)
    assert torch.allclose(ya, yb, atol=1e-5)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa.grad, pb.grad, rtol=1e-4, atol=1e-5), name  # the same gradients, recomputed
    full, saved = summarize(book).totals, summarize(lean).totals
    assert saved.params == full.params and saved.mult_adds == full.mult_adds  # the same network
    assert saved.saved_bytes < 0.5 * full.saved_bytes  # each layer's channels kept once, not every concatenation
    assert summarize(book).layers.path.tolist() == summarize(lean).layers.path.tolist()
    exported: dict = {"__name__": "exported"}
    exec(export_code(lean), exported)  # the code export recomputes too, with torch alone
    exported["net"](x).sum().backward()


def test_inception_blocks_with_residual_connections():
    model = build("googlenet", residual=True)
    blocks = [m for m in model.modules() if type(m).__name__ == "Inception"]
    changing = [b for b in blocks if b.p1_1.in_channels != b.p1_1.out_channels + b.p2_2.out_channels
                + b.p3_2.out_channels + b.p4_2.out_channels]
    assert all(b.shortcut is not None for b in changing) and any(b.shortcut is None for b in blocks)
    same = next(b for b in blocks if b.shortcut is None)
    x = torch.rand(1, same.p1_1.in_channels, 6, 6)
    same.residual = False
    concatenated = same(x)
    same.residual = True
    assert torch.allclose(same(x), torch.relu(concatenated + x))  # the block's input added to its paths


def test_regnet_stages_take_one_group_width_and_bottleneck_each_or_one_for_all():
    shared = build("regnetx32")
    assert [stage[0].conv2.groups for stage in (shared.stage1, shared.stage2)] == [32 // 16, 80 // 16]
    own = build("regnetx32", channels=(64, 80), groups=(8, 16), bot_mul=(0.5, 1.0))
    assert [(stage[0].conv1.out_channels, stage[0].conv2.groups) for stage in (own.stage1, own.stage2)] == [
        (32, 32 // 8), (80, 80 // 16)]  # 64 x 0.5 inside, in groups of 8; 80 x 1 in groups of 16
    assert registry.config_from("regnetx32", {"groups": 16}).groups == (16,)  # a run stored with one number
    with pytest.raises(ConfigError) as err:
        registry.config_from("regnetx32", {"groups": (8, 8, 8)})
    assert err.value.knob == "groups"
