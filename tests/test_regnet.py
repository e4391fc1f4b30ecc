"""What is special to RegNetX (d2l-en 8.8): group widths, the ResNeXt block's box and parts. Everything every
network must do (the book's parameters and shapes, code export, presets) is checked over the catalog."""

import pytest
import torch

from explorer import registry
from explorer.errors import ConfigError
from explorer.summary import summarize
from explorer.training.loop import new_model
from explorer.views.diagram import diagram_figure, diagram_units
from explorer.views.inside import look_inside


def test_groups_is_a_width_so_the_convolutions_have_channels_over_width_groups():
    model = registry.build(registry.get("regnetx32").config)
    grouped = [m.groups for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert grouped == [32 // 16] * 4 + [80 // 16] * 6  # one grouped 3x3 convolution per block


def test_a_group_width_that_does_not_divide_a_stage_is_refused_under_its_knob():
    with pytest.raises(ConfigError) as err:
        registry.config_from("regnetx32", {"groups": 12})  # 80 channels in 80 // 12 = 6 groups: uneven
    assert err.value.knob == "groups" and "80 channels" in err.value.message
    assert registry.config_from("regnetx32", {"groups": 8, "channels": (32, 64)}).groups == (8,)


def test_the_diagram_and_inside_show_resnext_blocks_with_their_skips():
    config = registry.get("regnetx32").config
    s = summarize(config)
    units = diagram_units(s.layers, s.totals.input_shape)
    blocks = [u for u in units if u.title == "ResNeXtBlock"]
    assert [(u.kind, u.skip, u.repeat) for u in blocks] == [("skip", "1x1 conv", 1), ("skip", "identity", 3),
                                                             ("skip", "1x1 conv", 1), ("skip", "identity", 5)]
    labels = [a.text for a in diagram_figure(units).layout.annotations if a.text and "stage" in a.text]
    assert sum(">stage1<" in t for t in labels) == 2 and not any("stage stage" in t for t in labels)  # book's names
    inside = look_inside(new_model(config), config, torch.zeros(28, 28, dtype=torch.uint8))
    assert len(inside.blocks) == 10
    first = inside.blocks[0]
    assert [p.label.split(":")[0] for p in first.parts] == ["shortcut", "residual branch F(x)", "output"]
    assert all(p.shape == (32, 24, 24) for p in first.parts)  # 96 -> 48 (stem) -> 24 (stage 1)
