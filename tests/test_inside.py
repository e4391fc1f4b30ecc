"""The Inside views: feature maps that match the summary, kernels, saliency, dead layers, the CLI's PNGs
and the page, on real modules with fresh or trained weights."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import i18n, registry
from explorer.errors import ConfigError, QuotaError
from explorer.identity import Visitor
from explorer.summary import summarize
from explorer.training.loop import new_model
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunManager
from explorer.views.inside import layer_stats, look_inside, receptive_box, relu_table
from explorer.views.inside_service import describe_subject, images_of_class, mistakes, view
from explorer.views.pictures import batchnorm_chart, draw_box
from tests.test_app import app
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


@pytest.mark.parametrize("name", ["resnet34", "googlenet", "densenet"])
def test_blocks_show_their_paths_with_the_summary_shapes(name):
    config = preset(name, "quick").config
    inside = look_inside(new_model(config), config, IMAGE)
    layers = summarize(config).layers.set_index("path")
    kinds = {"resnet34": "Residual", "googlenet": "Inception", "densenet": "DenseBlock"}
    assert inside.blocks and {b.type for b in inside.blocks} == {kinds[name]}
    assert len(inside.blocks) == (layers.type == kinds[name]).sum()  # every block, none twice
    for block in inside.blocks:
        out = tuple(layers.loc[block.path, "output_shape"])
        shapes = [p.shape for p in block.parts]
        if block.type == "Residual":  # the shortcut, the residual branch and their sum have one shape
            assert [p.label.split(":")[0] for p in block.parts][1:] == ["residual branch F(x), before the sum",
                                                                         "output"]
            assert shapes == [out] * 3
        elif block.type == "Inception":  # four paths, concatenated along the channels
            assert len(shapes) == 4 and sum(s[0] for s in shapes) == out[0]
            assert {s[1:] for s in shapes} == {out[1:]}
        else:  # each layer adds growth_rate channels to what it was given
            assert [s[0] for s in shapes] == [config.growth_rate] * len(shapes)
            assert out[0] - layers.loc[block.path + ".net.0.0", "output_shape"][0] == len(shapes) * config.growth_rate
        for p in block.parts:
            assert p.maps.shape[0] == min(8, p.channels) and 0 <= p.maps.min() and p.maps.max() <= 1
    identity = [b.parts[0].text() for b in inside.blocks if b.type == "Residual"]
    assert not identity or (any("identity" in x for x in identity) and any("1x1" in x for x in identity))
    i18n.use("zh")  # each part is named in the reader's language, with its numbers
    try:
        said = [p.text() for b in inside.blocks for p in b.parts]
    finally:
        i18n.use("en")
    assert said and not [t for t in said if re.search("[a-z]{3}", t)], said
    if name == "densenet":
        assert said[0] == f"第 1 层增加 {config.growth_rate} 个通道"


def test_batch_norm_moving_statistics_are_shown_beside_the_batch_statistics():
    config = preset("lenet-bn", "quick").config
    model = new_model(config)
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    _, fresh = layer_stats(model, config, images)
    assert list(dict.fromkeys(fresh.layer)) == ["1", "5", "10", "13"]  # every BatchNorm2d and BatchNorm1d
    assert (fresh.moving_mean == 0).all() and (fresh.moving_var == 1).all() and fresh.batch_var.gt(0).all()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:  # a cumulative average over one pass: the moving statistics become these images' own
        m.momentum = None
        m.reset_running_stats()
    from explorer.training.pipeline import prepare
    with torch.no_grad():
        model.train()(prepare(images.reshape(-1, 1, 28, 28), config.resolution, False))
    _, seen = layer_stats(model, config, images)
    first = seen[seen.layer == "1"]  # later layers' inputs differ a little: evaluation normalizes them with
    assert np.allclose(first.moving_mean, first.batch_mean, atol=1e-6)  # the moving statistics
    assert np.allclose(seen.moving_mean, seen.batch_mean, atol=1e-3)
    assert np.allclose(seen.moving_var, seen.batch_var, rtol=0.1)  # torch keeps the unbiased variance
    scratch = preset("lenet-bn-scratch", "quick").config  # d2l's own BatchNorm keeps moving_mean and moving_var
    assert len(layer_stats(new_model(scratch), scratch, images)[1]) == len(fresh)


def test_a_units_receptive_field_is_a_box_on_the_input_centred_where_the_unit_sits():
    from explorer.errors import ConfigError

    config = preset("resnet18", "quick").config  # 28x28 input; stage 0 is 7x7 with a receptive field of 11
    assert summarize(config).layers.set_index("path").loc["0", "receptive_field"] == 11
    box = receptive_box(config, "0", 3, 0)  # centred at (3.5, 0.5) x 4 pixels
    assert (box.top, box.bottom) == (14 - 5.5, 14 + 5.5)
    assert (box.left, box.right) == (0, 2 + 5.5) and box.cut  # cut at the left edge
    assert not receptive_box(config, "0", 3, 3).cut
    whole = receptive_box(config, "4", 0, 0)  # the last stage sees the whole image
    assert (whole.top, whole.left, whole.bottom, whole.right) == (0, 0, 28, 28) and whole.size > 28
    with pytest.raises(ConfigError, match="row from 0 to 6"):
        receptive_box(config, "0", 7, 0)
    drawn = draw_box(np.zeros((28, 28), np.uint8), receptive_box(config, "0", 3, 3), config.resolution)
    orange = (drawn == [255, 140, 0]).all(axis=2)
    rows, cols = np.nonzero(orange)
    assert drawn.shape == (224, 224, 3) and orange.any()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (68, 155, 68, 155)  # 8.5..19.5 of 28, x8


def test_a_layer_forced_to_zero_is_flagged_dead_and_a_healthy_one_is_not():
    config = preset("nin", "quick").config
    model = new_model(config)
    images = torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8)
    assert not layer_stats(model, config, images)[0].dead.any()
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.bias.fill_(-1e6)  # its ReLU now outputs zero for every image, as NiN's does under plain SGD
    stats, _ = layer_stats(model, config, images)
    assert list(stats[stats.dead].layer) == [stats.layer.iloc[-1]]


def test_the_relu_table_and_the_batch_norm_chart_speak_the_readers_language():
    config = preset("resnet18", "quick").config
    images = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    stats, norms = layer_stats(new_model(config), config, images)
    assert (stats.part == "output: ReLU(F(x) + x)").sum() == sum(config.blocks)  # each block's functional ReLU
    i18n.use("zh")
    try:
        table = relu_table(stats)
        chart = batchnorm_chart(norms, len(images))
    finally:
        i18n.use("en")
    assert list(table.columns) == ["层", "均值", "标准差", "零输出占比", "已死"]
    assert table["层"].iloc[-1] == "4.1 输出：ReLU(F(x) + x)"  # the last block's output, named in Chinese
    assert [a.text for a in chart.layout.annotations] == ["均值", "方差"]
    assert [d.marker.colorbar.title.text for d in chart.data if d.marker.colorbar.title.text] == ["层"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from explorer.training.data import FILES, write_idx
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path_factory.mktemp("data"))
    labels = torch.arange(200, dtype=torch.uint8) % 10  # write_dataset's 200 test labels, twenty of them off by
    labels[:20] = (labels[:20] + 1) % 10  # one: the run makes mistakes to pick, however well a CPU's run learns
    write_idx(data / (FILES["test_labels"] + ".gz"), labels)
    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, threads=1, data_dir=str(data))
    config = preset("resnet18", "quick").config
    run_id = manager.start("resnet18", config, TrainSettings(lr=0.05, epochs=1, batch_size=32), Visitor("alice"))
    assert manager.wait(run_id, timeout=180).status == "done"
    yield manager, run_id, home, data
    manager.shutdown()


def test_a_trained_run_is_shown_by_its_id_and_is_not_dead(trained):
    manager, run_id, _, _ = trained
    v = view(manager, run_id, 3)  # a run's link is a read-only view for whoever has it
    assert v.name == "resnet18" and not v.stats.dead.any()
    fresh = view(manager, "resnet18", 3).inside  # the catalog's network, untrained
    assert v.inside.kernels.shape[0] == 16 and not np.array_equal(v.inside.probabilities, fresh.probabilities)
    assert view(manager, run_id, 3) is v  # cached per (run, image)
    assert describe_subject(manager, run_id).endswith(f"run {run_id}")
    assert describe_subject(manager, run_id).startswith("resnet18 trained with the quick preset (done, best test")
    assert "untrained" in describe_subject(manager, "resnet18")
    with pytest.raises(Exception, match="test image index"):
        view(manager, run_id, 10**6)
    with pytest.raises(Exception, match="neither a run"):
        view(manager, "0123456789ab", 3)
    with pytest.raises(Exception, match="only the run's owner can download"):
        manager.weights_file(run_id, Visitor("bob"))
    assert manager.weights_file(run_id, Visitor("alice")).startswith(b"PK")  # torch.save's zip


def test_images_to_pick_are_a_runs_mistakes_or_a_class(trained):
    manager, run_id, _, data = trained
    from explorer.training.data import CLASS_NAMES, load_data

    test = load_data(str(data))
    wrong = mistakes(manager, run_id)
    predicted = np.frombuffer(manager.store.get(run_id).predictions, dtype=np.uint8)
    assert len(wrong) > 0 and (wrong.true != wrong.predicted).all()
    for row in wrong.itertuples():
        assert CLASS_NAMES[int(test.test_labels[row.image])] == row.true
        assert CLASS_NAMES[predicted[row.image]] == row.predicted
    assert mistakes(manager, "resnet18").empty
    shirts = images_of_class(manager, 6)
    assert shirts and all(int(test.test_labels[i]) == 6 for i in shirts)
    assert len(shirts) == int((test.test_labels == 6).sum())


def test_inspect_writes_painted_pngs_and_prints_the_prediction(trained, tmp_path):
    _, run_id, home, data = trained
    result = run_cli("inspect", run_id, "--image", "2", "--out", str(tmp_path / "out"), "--home", str(home),
                     "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("resnet18 trained with the quick preset") and f"run {run_id}" in result.stdout
    assert "test image 2 (" in result.stdout and "with probability" in result.stdout
    files = sorted((tmp_path / "out").glob("*.png"))
    assert {"input.png", "kernels.png", "saliency.png"} <= {f.name for f in files} and len(files) >= 8
    blocks = [f.name for f in files if f.name.startswith("block-")]  # ResNet-18's residual blocks, parts in a row
    assert blocks[:2] == ["block-1.0-residual.png", "block-1.1-residual.png"] and len(blocks) == 8
    for f in files:
        pixels = np.asarray(Image.open(f))
        assert pixels.std() > 0, f"{f.name} is blank"
        assert min(pixels.shape) >= 40 and max(pixels.shape) >= 200, f"{f.name} is {pixels.shape}: too small"
        assert (pixels[:18] < 128).mean() > 0.005, f"{f.name} has no title"  # black type on its white head
    fresh = run_cli("inspect", "lenet", "--out", str(tmp_path / "fresh"), "--home", str(home), "--data-dir", str(data))
    assert "lenet with fresh Xavier weights, untrained" in fresh.stdout, fresh.stderr
    assert run_cli("inspect", "nothing-like-this", "--home", str(home), "--data-dir", str(data)).returncode == 2


def test_the_inside_page_draws_the_image_its_stages_and_the_prediction(trained, monkeypatch):
    from explorer.server import close_server

    manager, run_id, home, data = trained
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(data))
    try:
        at = app("pages/inside.py", model="lenet-bn", image="7")
        assert at.query_params["model"] == "lenet-bn" and at.query_params["image"] == "7"  # a bookmark
        images = at.get("image")
        assert len(images) >= 6  # the input, saliency, kernels and a grid per convolutional stage
        chart = at.get("plotly_chart")[0].proto.spec
        assert '"Prediction"' in chart and "t-shirt" in chart
        assert any("feature maps" in h.value for h in at.subheader)

        # a lecturer's bookmark: a run, an image, a stage, a unit; opened by the run's owner
        at = app("pages/inside.py", state={"visitor": Visitor("alice")}, run=run_id, image="17", stage="2", unit="1,2")
        assert dict(at.query_params) == {"run": run_id, "image": "17", "stage": "2", "unit": "1,2"}
        assert at.selectbox(key="i.stage").value == "2"  # 32x4x4 at the quick preset's 28 pixels
        assert (at.number_input(key="i.row").value, at.number_input(key="i.col").value) == (1, 2)
        captions = " ".join(c.value for c in at.caption)
        assert "Unit (1, 2) of stage 2 sees" in captions
        assert "identity path" in captions and "shortcut: a 1x1 convolution" in captions  # blocks 2.1 and 2.0
        assert "residual branch F(x)" in captions
        charts = {c.proto.spec.count('"type":"scatter"'): c.proto.spec for c in at.get("plotly_chart")}
        assert any("moving mean (used in evaluation)" in spec for spec in charts.values())
        at.number_input(key="i.col").set_value(0).run()  # picking another unit moves the box and the URL
        assert at.query_params["unit"] == "1,0" and "Unit (1, 0) of stage 2" in " ".join(c.value for c in at.caption)
        at.radio(key="i.way").set_value("one it got wrong").run()
        first = at.selectbox(key="i.wrong").value
        assert at.query_params["image"] == str(first)
    finally:
        close_server()


def test_an_upload_becomes_a_28x28_grayscale_input_and_anything_else_is_refused():
    import io

    from explorer.errors import ConfigError
    from explorer.views.uploads import read_upload

    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        picture = Image.new("RGB", (300, 200), (0, 0, 0))
        picture.paste((200, 30, 30), (100, 50, 200, 150))  # a red square on black
        picture.save(buffer, fmt)
        upload = read_upload(buffer.getvalue())
        assert upload.image.shape == (28, 28) and upload.image.dtype == np.uint8 and not upload.inverted
        assert upload.image[14, 14] > 200 and upload.image[0, 0] == 0  # the square fills the frame, stretched
        assert max(upload.preview.shape) <= 256
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
    v = view(manager, run_id, buffer.getvalue())
    assert v.label == -1 and v.image.shape == (28, 28) and len(v.inside.stages) > 0


def shoe(dark_on_light: bool) -> bytes:
    """A sneaker drawn in one shade on a plain ground, as a student would draw one, as PNG bytes; the two
    are each other's negative."""
    import io

    from PIL import ImageDraw

    ink, ground = (30, 240) if dark_on_light else (225, 15)
    picture = Image.new("L", (300, 200), ground)
    draw = ImageDraw.Draw(picture)
    draw.polygon([(40, 150), (60, 90), (120, 80), (170, 110), (260, 125), (270, 160), (40, 160)], fill=ink)
    draw.line([(100, 95), (130, 115)], fill=ground, width=4)  # a lace
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_dark_shoe_on_white_and_its_light_twin_on_black_become_the_same_input(trained):
    from explorer.views.uploads import read_upload

    manager, run_id, _, _ = trained
    dark, light = read_upload(shoe(True)), read_upload(shoe(False))
    assert dark.inverted and not light.inverted  # a light border means a light ground: swapped
    assert np.abs(dark.image.astype(int) - light.image).max() <= 1  # rounding in the resize, at most
    assert dark.image[0].max() == 0 and dark.image[:, 0].max() == 0  # a black ground, like Fashion-MNIST's
    rows, cols = np.nonzero(dark.image)
    assert cols.min() <= 2 and cols.max() >= 25  # cropped to the shoe: it spans the width, as the data's do
    kept = read_upload(shoe(True), invert=False)  # the switch: keep it as drawn
    assert not kept.inverted and not np.array_equal(kept.image, dark.image)
    a, b = view(manager, run_id, shoe(True)), view(manager, run_id, shoe(False))
    assert a.upload.inverted and not b.upload.inverted
    assert np.allclose(a.inside.probabilities, b.inside.probabilities, atol=0.01)
    assert a.inside.probabilities.argmax() == b.inside.probabilities.argmax()  # the same prediction


def claiming(fmt: str, width: int, height: int) -> bytes:
    """A small real image whose header claims `width` x `height` pixels (a decompression bomb's trick)."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, fmt)
    data = bytearray(buffer.getvalue())
    if fmt == "PNG":  # IHDR: width and height, then its CRC
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    else:  # the baseline JPEG's start-of-frame marker: precision, then height and width
        at = bytes(data).index(b"\xff\xc0")
        data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(("fmt", "width", "height"), [("PNG", 100_000, 100_000), ("JPEG", 65_500, 65_500),
                                                      ("PNG", 13_000, 13_000)])
def test_an_upload_claiming_a_huge_image_is_refused_with_its_own_message_before_decoding(fmt, width, height):
    import resource

    from explorer.errors import ConfigError
    from explorer.views.uploads import read_upload

    bomb = claiming(fmt, width, height)
    assert len(bomb) < 20_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match="claims .* pixels.*; upload one of at most 25 megapixels"):
        read_upload(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024  # KiB: nothing decoded


def test_ten_concurrent_fresh_vgg11_views_build_one_network_out_of_the_server_and_stay_under_2_gb(tmp_path):
    """Ten students open Inside on the book's VGG-11 (129 M weights) at once, each a new image: the network is
    built once, in the Inside process, and the server itself hardly grows."""
    import subprocess
    import sys
    import textwrap

    from tests.browser import ROOT
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data")
    script = textwrap.dedent(f"""
        import os, resource, threading, time
        from explorer.training.data import load_data
        from explorer.training.runs import RunManager
        from explorer.views import inside_service as inside
        manager = RunManager({str(tmp_path / "home")!r}, data_dir={str(data)!r})
        load_data({str(data)!r})
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        views = [threading.Thread(target=inside.view, args=(manager, "vgg11", i)) for i in range(10)]
        for t in views:
            t.start()
        for t in views:
            t.join()
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        service = inside.SERVICE
        status = open(f"/proc/{{service.pid}}/status").read()
        peak = int(status.split("VmHWM:")[1].split()[0]) // 1024
        pid = service.pid
        inside.view(manager, "lenet", 0)
        print(grown, peak, int(pid != os.getpid() and service.pid == pid), inside._view.cache_info().currsize,
              round(time.perf_counter() - start))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    server_mb, inside_mb, one_process, views, seconds = map(int, out.stdout.split()[-5:])
    assert views == 11 and one_process  # every view from one kept process, which keeps the network it built
    assert server_mb < 100, f"the server grew {server_mb} MB: a view ran in it"
    assert server_mb + inside_mb < 2048, f"ten views took {server_mb} + {inside_mb} MB ({seconds} s)"
    print(f"ten views: server +{server_mb} MB, Inside process {inside_mb} MB at most, {seconds} s")


def test_a_view_over_the_memory_budget_is_refused_and_the_next_one_gets_a_fresh_process(trained, monkeypatch):
    from explorer.views import inside_service as inside

    manager, run_id, _, _ = trained
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET_GB", "0.7")  # torch and the test data fit; VGG-11's weights do not
    with pytest.raises(QuotaError, match=r"Looking inside this network took over 0\.7 GiB of memory"):
        inside.view(manager, "vgg11", 1)
    assert inside.view(manager, run_id, 1).name == "resnet18"  # a new process, within the budget
    assert inside.SERVICE.pid is not None


def test_the_inside_process_is_killed_past_its_time_and_a_failure_is_a_message():
    import time

    from explorer.training.processes import Service

    service = Service(time.sleep, "sleeper", "Sleeping", seconds=1.0, max_bytes=2**33)
    assert service.ask(0.01) is None
    first = service.pid
    started = time.monotonic()
    with pytest.raises(QuotaError, match="Sleeping took over 1 s here"):
        service.ask(30)
    assert time.monotonic() - started < 3 and service.pid is None  # killed, not waited for
    with pytest.raises(QuotaError, match="TypeError"):  # any other exception: its name, and no traceback
        service.ask("one second")
    assert service.pid not in (None, first)  # the failure kept the new process; the killed one is gone
    service.stop()


@pytest.mark.parametrize("name", ["lenet", "alexnet", "googlenet", "resnet18", "regnetx32"])
def test_a_convolution_unit_worked_out_by_hand_is_the_feature_maps_value(name):
    """Strides, padding, 1x1 and 5x5 kernels, grouped convolutions: the patch times the kernel, summed, plus
    the bias, is what the convolution put there, to float precision."""
    import random

    from explorer.views.inside import conv_layers, unit_arithmetic

    rng = random.Random(0)
    config = preset(name, "quick").config
    model = new_model(config)
    image = torch.randint(0, 256, (28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for layer in conv_layers(config):
        first = unit_arithmetic(model, config, image, layer, 0, 0, 0)  # a corner: padding in the patch
        channels, height, width = first.output_shape
        for unit in (first, unit_arithmetic(model, config, image, layer, rng.randrange(channels),
                                            rng.randrange(height), rng.randrange(width))):
            assert unit.total == pytest.approx(unit.value, rel=1e-4, abs=1e-5), (layer, unit.row, unit.col)
            assert unit.patch.shape == unit.kernel.shape == unit.product.shape
    with pytest.raises(ConfigError, match="must be a channel from 0 to"):
        unit_arithmetic(model, config, image, conv_layers(config)[0], 10_000, 0, 0)


def test_inside_works_out_a_unit_and_steps_across_the_image(trained, monkeypatch):
    from explorer.server import close_server

    manager, run_id, home, data = trained
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(data))
    try:
        at = app("pages/inside.py", timeout=120, run=run_id)
        assert any(h.value == "One convolution up close" for h in at.subheader)
        sentence = next(m.value for m in at.markdown if m.value.startswith("Σ (patch × kernel)"))
        total, value = (float(x) for x in re.findall(r"\*\*(-?[\d.]+)\*\*", sentence)[1:3])
        assert total == pytest.approx(value, abs=2e-4)  # as printed, to four places
        at.button(key="i.conv.forward").click().run()
        assert (at.number_input(key="i.conv.row").value, at.number_input(key="i.conv.col").value) == (0, 1)
        figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        [parts] = [f for f in figures if [a["text"] for a in f["layout"].get("annotations", [])][:3]
                   == ["input patch", "kernel", "patch × kernel"]]
        assert [t["type"] for t in parts["data"]] == ["heatmap"] * 3
        patch, kernel, product = (plotly_array(t["z"]) for t in parts["data"])
        assert np.allclose(patch * kernel, product, atol=1e-6)  # the product drawn is the product
    finally:
        close_server()


def plotly_array(values) -> np.ndarray:
    """Plotly's JSON holds numpy arrays as base64 ({"dtype", "bdata", "shape"}) or as plain lists."""
    if isinstance(values, dict):
        import base64

        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return flat.reshape([int(n) for n in str(values.get("shape", len(flat))).split(",")])
    return np.array(values, dtype=float)
