"""Every catalog entry, as timm's tests loop over list_models(): builds, runs, and matches the book."""

import dataclasses
import runpy

import pytest
import torch

from explorer import registry
from explorer.codegen import export_code
from explorer.config import with_overrides
from explorer.models.vgg import VGGConfig
from explorer.registry import BookSettings, ModelEntry
from explorer.summary import summarize
from tests import d2l_book
from tests.helpers import count_params, leaf_shapes

MODELS = registry.list_models()


def test_catalog_covers_the_chapter():
    assert set(MODELS) == set(d2l_book.BOOK)
    chapter = ["LeNet", "AlexNet", "VGG", "NiN", "GoogLeNet", "ResNet", "DenseNet"]
    assert list(registry.families())[:len(chapter)] == chapter  # the book's order, whatever comes after


@pytest.mark.parametrize("name", MODELS)
def test_forward_gives_finite_logits(name):
    config = registry.get(name).config
    torch.manual_seed(0)
    model = registry.build(config)
    x = torch.rand(2, config.in_channels, config.resolution, config.resolution)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, config.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_matches_the_books_network(name):
    config = registry.get(name).config
    with torch.device("meta"):
        ours, book = registry.build(config), d2l_book.BOOK[name]()
    shape = (config.in_channels, config.resolution, config.resolution)
    assert count_params(ours) == count_params(book)
    assert leaf_shapes(ours, shape) == leaf_shapes(book, shape)


@pytest.mark.parametrize("name", MODELS)
def test_exported_code_rebuilds_the_same_network(name, tmp_path):
    config = registry.get(name).config
    if name.startswith("vgg") or name == "alexnet":  # keep the test light: same code, smaller dense layers
        config = with_overrides(config, {"fc_width": "64"})
    path = tmp_path / "net.py"
    path.write_text(export_code(config))
    net = runpy.run_path(str(path))["net"]
    assert "explorer" not in path.read_text()  # standalone: torch only
    assert count_params(net) == summarize(config).totals.params
    shape = (config.in_channels, config.resolution, config.resolution)
    with torch.device("meta"):
        assert leaf_shapes(net.to("meta"), shape) == leaf_shapes(registry.build(config), shape)


def test_alexnet_dense_input_follows_the_resolution():
    config = with_overrides(registry.get("alexnet").config, {"resolution": "96"})
    first_linear = summarize(config).layers.query("type == 'Linear'").iloc[0]
    size = ((96 + 2 - 11) // 4 + 1 - 3) // 2 + 1
    size = (size - 3) // 2 + 1
    size = (size - 3) // 2 + 1
    assert first_linear.params == (256 * size * size + 1) * 4096


def test_vgg_ratio_divides_every_channel_count():
    layers = summarize(VGGConfig(ratio=4)).layers
    convs = layers[layers.type == "Conv2d"]
    assert [s[0] for s in convs.output_shape] == [16, 32, 64, 64, 128, 128, 128, 128]


def test_registry_refuses_duplicates():
    entry = registry.get("vgg11")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(entry)
    with pytest.raises(ValueError, match="already has the builder"):
        registry.register(ModelEntry("vgg-other", "VGG", "x", "7.2", VGGConfig(), lambda **kw: None,
                                     BookSettings(lr=0.1, batch_size=1), registry.get("vgg11").presets))
    assert "vgg-other" not in registry.list_models()


def test_unknown_model_suggests_close_names():
    with pytest.raises(Exception, match="did you mean vgg11"):
        registry.get("vgg-11")


def test_configs_are_hashable_and_frozen():
    config = registry.get("resnet18").config
    assert hash(config) == hash(with_overrides(config, {}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.blocks = (1, 1)


def test_resnet_without_its_shortcuts_is_the_plain_network_of_the_same_depth_and_widths():
    """7.6's exercise: take the shortcut away. At the book's ResNet-18 that removes exactly the three 1x1
    shortcut convolutions with their biases; every 3x3 convolution and batch norm stays."""
    from torch import nn

    book = registry.get("resnet18").config
    plain = dataclasses.replace(book, residual=False)
    assert summarize(book).totals.params - summarize(plain).totals.params == 172_928
    assert 64 * 128 + 128 + 128 * 256 + 256 + 256 * 512 + 512 == 172_928
    net, plain_net = registry.build(book), registry.build(plain)

    def count(model, kind, **where):
        return sum(isinstance(m, kind) and all(getattr(m, k) == v for k, v in where.items()) for m in model.modules())

    assert count(net, nn.Conv2d, kernel_size=(1, 1)) == 3 and count(plain_net, nn.Conv2d, kernel_size=(1, 1)) == 0
    assert count(net, nn.Conv2d, kernel_size=(3, 3)) == count(plain_net, nn.Conv2d, kernel_size=(3, 3)) == 16
    assert count(net, nn.BatchNorm2d) == count(plain_net, nn.BatchNorm2d) == 17
    # what the shortcut does: with the branch's weights at zero a residual block passes its input on,
    # a plain block passes nothing
    from explorer.models.resnet import PlainBlock, Residual

    x = torch.rand(2, 8, 6, 6)
    for block, expected in ((Residual(8, 8), x), (PlainBlock(8, 8), torch.zeros_like(x))):
        for p in block.parameters():
            torch.nn.init.zeros_(p)
        assert torch.allclose(block.eval()(x), expected)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "densenet"])
def test_norm_none_leaves_every_batch_norm_out_and_nothing_else(name):
    from torch import nn

    config = registry.get(name).config
    with_bn, without = registry.build(config), registry.build(dataclasses.replace(config, norm="none"))
    norms = [m for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(isinstance(m, nn.BatchNorm2d) for m in without.modules())
    assert (sum(p.numel() for p in with_bn.parameters()) - sum(p.numel() for p in without.parameters())
            == sum(2 * m.num_features for m in norms))
    assert without(torch.rand(2, 1, config.resolution, config.resolution)).shape == (2, 10)


def test_switch_knobs_read_true_and_false_and_refuse_anything_else():
    from explorer.errors import ConfigError

    config = registry.get("resnet18").config
    assert with_overrides(config, {"residual": "false"}).residual is False
    assert with_overrides(config, {"residual": "True"}).residual is True
    for text in ("0", "'no'", "[]"):
        with pytest.raises(ConfigError, match="residual: must be true or false"):
            with_overrides(config, {"residual": text})
    with pytest.raises(ConfigError, match="norm: must be one of builtin, none"):
        with_overrides(config, {"norm": "scratch"})
