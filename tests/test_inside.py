"""The Inside views: feature maps that match the summary, kernels, saliency, dead layers, the CLI's PNGs
and the page, on real modules with fresh or trained weights."""

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import registry
from explorer.inside import activation_stats, look_inside, view
from explorer.runs import RunManager, Visitor
from explorer.summary import summarize
from explorer.train import TrainSettings, new_model, preset
from tests.test_app import APP
from tests.test_cli import run_cli

IMAGE = (torch.arange(28 * 28) % 251).reshape(28, 28).to(torch.uint8)


@pytest.mark.parametrize("name", registry.list_models())
def test_each_stage_shows_the_summary_output_shape_and_saliency_has_the_input_shape(name):
    config = preset(name, "quick").config  # a small resolution
    inside = look_inside(new_model(config), config, IMAGE)
    top = summarize(config).layers.query("depth == 1")
    assert [s.shape for s in inside.stages] == [tuple(shape) for shape in top.output_shape]
    for s in inside.stages:
        assert s.maps.ndim == 3 and s.maps.shape[0] <= 16
        assert max(s.maps.shape[1:]) <= (56 if len(s.shape) == 3 else 224)  # small enough to ship
        assert 0 <= s.maps.min() and s.maps.max() <= 1
    assert inside.saliency.shape == (config.resolution, config.resolution) and inside.saliency.max() == 1.0
    assert abs(inside.probabilities.sum() - 1) < 1e-5 and inside.kernels.ndim == 3


def test_a_layer_forced_to_zero_is_flagged_dead_and_a_healthy_one_is_not():
    config = preset("nin", "quick").config
    model = new_model(config)
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    assert not activation_stats(model, config, images).dead.any()
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.bias.fill_(-1e6)  # its ReLU now outputs zero for every image, as NiN's does under plain SGD
    stats = activation_stats(model, config, images)
    assert list(stats[stats.dead].layer) == [stats.layer.iloc[-1]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path_factory.mktemp("data"))
    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, threads=1, data_dir=str(data))
    config = preset("resnet18", "quick").config
    run_id = manager.start("resnet18", config, TrainSettings(lr=0.05, epochs=1, batch_size=32), Visitor("alice"))
    assert manager.wait(run_id, timeout=180).status == "done"
    yield manager, run_id, home, data
    manager.shutdown()


def test_a_trained_run_is_shown_to_its_owner_only_and_is_not_dead(trained):
    manager, run_id, _, _ = trained
    v = view(manager, run_id, 3, Visitor("alice"))
    assert v.name == "resnet18" and not v.stats.dead.any()
    fresh = view(manager, "resnet18", 3, Visitor("alice")).inside  # the catalog's network, untrained
    assert v.inside.kernels.shape[0] == 16 and not np.array_equal(v.inside.probabilities, fresh.probabilities)
    assert view(manager, run_id, 3, Visitor("alice")) is v  # cached per (run, image)
    with pytest.raises(Exception, match="your own runs"):
        view(manager, run_id, 3, Visitor("bob"))
    with pytest.raises(Exception, match="test image index"):
        view(manager, run_id, 10**6, Visitor("alice"))


def test_inspect_writes_painted_pngs_and_prints_the_prediction(trained, tmp_path):
    _, run_id, home, data = trained
    result = run_cli("inspect", run_id, "--image", "2", "--out", str(tmp_path / "out"), "--home", str(home),
                     "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert "resnet18, test image 2" in result.stdout and "with probability" in result.stdout
    files = sorted((tmp_path / "out").glob("*.png"))
    assert {"kernels.png", "saliency.png"} <= {f.name for f in files} and len(files) >= 8
    for f in files:
        pixels = np.asarray(Image.open(f))
        assert pixels.std() > 0, f"{f.name} is blank"
    assert run_cli("inspect", "nothing-like-this", "--home", str(home), "--data-dir", str(data)).returncode == 2


def test_the_inside_page_draws_the_image_its_stages_and_the_prediction(trained, monkeypatch):
    from pages.common import run_manager

    manager, run_id, home, data = trained
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(data))
    run_manager.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["model"] = "lenet-bn"
        at.query_params["image"] = "7"
        at.switch_page("pages/inside.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.query_params["model"] == "lenet-bn" and at.query_params["image"] == "7"  # a bookmark
        images = at.get("image")
        assert len(images) >= 6  # the input, saliency, kernels and a grid per convolutional stage
        chart = at.get("plotly_chart")[0].proto.spec
        assert '"Prediction"' in chart and "t-shirt" in chart
        assert any("feature maps" in h.value for h in at.subheader)
    finally:
        run_manager().shutdown()
        run_manager.clear()


def test_an_upload_becomes_a_28x28_grayscale_input_and_anything_else_is_refused():
    import io

    from explorer.errors import ConfigError
    from explorer.inside import read_upload

    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.new("RGB", (300, 200), (200, 30, 30)).save(buffer, fmt)
        pixels = read_upload(buffer.getvalue())
        assert pixels.shape == (28, 28) and pixels.dtype == torch.uint8 and 60 < int(pixels[14, 14]) < 100
    with pytest.raises(ConfigError, match="not an image"):
        read_upload(b"%PDF-1.4 definitely not a picture")
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, "GIF")
    with pytest.raises(ConfigError, match="PNG or JPEG"):
        read_upload(gif.getvalue())
    with pytest.raises(ConfigError, match="at most 5 MB"):
        read_upload(b"\x89PNG" + bytes(6 * 2**20))


def test_an_uploaded_picture_is_looked_at_with_no_true_class(trained):
    import io

    manager, run_id, _, _ = trained
    buffer = io.BytesIO()
    Image.new("L", (56, 56), 255).save(buffer, "PNG")
    v = view(manager, run_id, buffer.getvalue(), Visitor("alice"))
    assert v.label == -1 and v.image.shape == (28, 28) and len(v.inside.stages) > 0
