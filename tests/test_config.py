"""One literal syntax for list knobs, everywhere: widget text, URL parameters and the CLI."""

import pytest

from explorer import registry
from explorer.cli import main
from explorer.config import parse_value, with_overrides
from explorer.errors import ConfigError
from explorer.models.resnet import ResNetConfig
from explorer.models.vgg import VGGConfig
from explorer.views.ui import config_from_params

BLOCKS = ResNetConfig.__annotations__["blocks"]


@pytest.mark.parametrize("text", ["3, 4, 6, 3", "(3,4,6,3)", "[3, 4, 6, 3]", " (3, 4, 6, 3,) "])
def test_a_list_knob_reads_every_way_the_readme_writes_it(text):
    config = with_overrides(registry.get("resnet18").config, {"blocks": text})
    assert config.blocks == (3, 4, 6, 3)
    assert config == registry.get("resnet34").config


def test_one_entry_is_a_list_of_one():
    config = with_overrides(ResNetConfig(), {"blocks": "2", "channels": "(64)"})
    assert (config.blocks, config.channels) == ((2,), (64,))
    assert with_overrides(VGGConfig(), {"conv_arch": "(1, 64)"}).conv_arch == ((1, 64),)
    assert with_overrides(VGGConfig(), {"conv_arch": "(1, 64), (2, 128)"}).conv_arch == ((1, 64), (2, 128))


def test_text_that_is_not_a_literal_names_the_knob():
    with pytest.raises(ConfigError) as err:
        parse_value("blocks", BLOCKS, "__import__('os')")
    assert err.value.knob == "blocks" and "cannot read" in err.value.message


def test_the_url_and_the_cli_take_the_same_syntax(capsys):
    name, config, problems = config_from_params({"model": "resnet18", "blocks": "(3,4,6,3)"})
    assert problems == [] and config.blocks == (3, 4, 6, 3)
    assert main(["summary", "resnet18", "--set", "blocks=(3,4,6,3)", "--format", "json"]) == 0
    assert main(["summary", "resnet18", "--set", "blocks=3,4,6,3", "--format", "json"]) == 0


def test_a_rule_between_two_knobs_names_both():
    with pytest.raises(ConfigError) as err:
        ResNetConfig(blocks=(3, 4, 6))
    assert err.value.knob == "blocks" and err.value.related == ("channels",)
    assert "blocks has 3 stages but channels has 4" in err.value.message
    with pytest.raises(ConfigError) as err:
        VGGConfig(conv_arch=((1, 64), (1, 2)), ratio=4)
    assert err.value.knob == "ratio" and err.value.related == ("conv_arch",)
    assert "conv_arch row 2" in err.value.message


def test_a_table_knob_checks_each_column_against_its_own_bounds():
    """conv_arch's columns (registry metadata the table editor is drawn from): num_convs 1-16, out_channels
    1-4096, each row named in the refusal."""
    from explorer.config import knob_info

    columns = next(i["columns"] for i in knob_info(VGGConfig()) if i["name"] == "conv_arch")
    assert [(c.name, c.lo, c.hi) for c in columns] == [("num_convs", 1, 16), ("out_channels", 1, 4096)]
    assert VGGConfig(conv_arch=((16, 4096),)).conv_arch == ((16, 4096),)
    with pytest.raises(ConfigError, match="row 2: num_convs must be from 1 to 16, not 17"):
        VGGConfig(conv_arch=((1, 64), (17, 64)))
    assert all(not i["columns"] for i in knob_info(VGGConfig()) if i["name"] != "conv_arch")
