"""中文 and English: every string a page can show has its Chinese, the language follows the browser, the
switch and the URL, and the Chinese pages say what the English ones say."""

import ast
import json
import re
import unicodedata
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import cli, exercises, i18n, lessons, registry
from explorer.config import knob_info
from explorer.errors import ConfigError, QuotaError
from explorer.i18n import _
from explorer.training.dynamics import STATISTICS
from explorer.training.schema import STATUSES
from tests.test_app import APP

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "explorer").rglob("*.py"))]


ERRORS = {"ExplorerError": 0, "OwnerError": 0, "MissingWeightsError": 0, "StoreError": 0, "DataError": 0,
          "ConfigError": 1, "QuotaError": 1}  # the engine's errors and where each takes its template


def literal_keys() -> set[str]:
    """Every `_("...")` and `N_("...")` of the code, every error's template (`ConfigError(knob, "...")`) and
    every stored message's (`keep("...")`): the strings it shows, as written. A template must be written out
    (or chosen among marked ones), never made by an f-string or by adding strings: the catalog could not
    hold it."""
    found, made = set(), []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            name = node.func.id
            if name in ("_", "N_"):
                texts = node.args[:1]
            elif name in ERRORS and len(node.args) > ERRORS[name] or name == "keep" and node.args:
                template = node.args[ERRORS.get(name, 0)]
                texts = [template.body, template.orelse] if isinstance(template, ast.IfExp) else [template]
                made += [f"{path.name}:{node.lineno}" for t in texts if isinstance(t, (ast.JoinedStr, ast.BinOp))]
            else:
                continue
            found |= {t.value for t in texts if isinstance(t, ast.Constant) and isinstance(t.value, str)}
    assert not made, f"error templates made on the fly: {made}"
    return found


def data_keys() -> set[str]:
    """Strings that reach `_()` as data: the catalog's descriptions and knobs' help, the lessons, the names of
    statistics, classes, statuses and phases, and the pages' choices."""
    from explorer.training.data import CLASS_NAMES
    from explorer.views.board import AXES, BOARD_COLUMNS
    from explorer.views.inside import DEAD_ADVICE
    from explorer.views.runviews import HISTORY_COLUMNS
    from explorer.views.tables import LAYER_COLUMNS
    from explorer.views.ui import STAGE_COLUMNS, VIEWS
    from explorer.views.uploads import INVERSIONS

    keys = {*STATISTICS.values(), *CLASS_NAMES, *STATUSES, *VIEWS, *INVERSIONS, *LAYER_COLUMNS, *HISTORY_COLUMNS,
            *STAGE_COLUMNS, *AXES.values(), *BOARD_COLUMNS.values(),
            DEAD_ADVICE, "mean", "var", "input", "logits", "identity", "1x1 conv",
            "A trained run", "Fresh weights", "by index", "by class", "one it got wrong",
            "loading Fashion-MNIST", "loading MNIST", "measuring the fastest memory format", "building the model",
            "first batch", "starting a worker process"}
    for name in registry.list_models():
        entry = registry.get(name)
        keys.add(entry.description)
        for info in knob_info(entry.config):
            keys.add(info["help"])
            for column in info["columns"]:
                keys |= {column.header, column.help}
    keys |= {*exercises.KINDS, *exercises.COVERAGE}
    for lesson in lessons.LESSONS:
        keys |= {lesson.title, lesson.claim, *(side.label for side in lesson.pair)}
        if lesson.exercise:
            keys.add(lesson.exercise)
    return keys


def test_every_string_has_its_chinese_and_the_catalog_holds_nothing_else():
    wanted = literal_keys() | data_keys()
    zh = i18n.catalog("zh")
    missing = sorted(wanted - zh.keys())
    assert not missing, f"{len(missing)} without Chinese: {missing[:20]}"
    assert not sorted(zh.keys() - wanted), "translations of strings the code no longer has"
    for english, chinese in zh.items():  # a translation keeps the placeholders its English fills in
        assert sorted(re.findall(r"{[^}]*}", english)) == sorted(re.findall(r"{[^}]*}", chinese)), english
        assert chinese.strip() and chinese != english or not re.search("[a-z]{3}", english), english


BOOK_TERMS = {  # as 动手学深度学习 writes them
    "pooling": "汇聚层", "batch normalization": "批量规范化", "padding": "填充", "stride": "步幅",
    "channel": "通道", "receptive field": "感受野", "learning rate": "学习率", "training loss": "训练损失",
    "test accuracy": "测试精度",
}


def test_the_glossary_is_the_books_words_and_the_catalog_uses_them():
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    rows = dict(re.findall(r"^\| ([a-z][a-z -]+?) \| (\S+?) \|", glossary, re.MULTILINE))
    for english, chinese in BOOK_TERMS.items():
        assert rows.get(english) == chinese, english
    zh = "\n".join(i18n.catalog("zh").values())
    assert "池化" not in zh and "批归一化" not in zh and "批量归一化" not in zh  # a machine translation's words


def test_the_language_follows_the_url_then_the_session_and_holds_across_pages():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.metric[0].label == "参数" and at.query_params["lang"] == "zh"  # a lecturer's bookmark
    assert at.sidebar.radio(key="lang.switch").value == "zh"
    at.switch_page("pages/train.py").run()
    assert at.title[0].value == "在 Fashion-MNIST 上训练"  # the next page, still Chinese
    at.query_params["lang"] = "en"  # a link that asks for English wins over the session's choice
    at.run()
    assert at.title[0].value == "Train on Fashion-MNIST"
    english = AppTest.from_file(APP, default_timeout=60)
    english.run()
    assert english.metric[0].label == "parameters" and "lang" not in english.query_params


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_cli_speaks_chinese_only_when_lang_asks(language, monkeypatch, capsys):
    monkeypatch.setenv("LANG", "zh_CN.UTF-8" if language == "zh" else "C.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    assert i18n.for_cli() == language
    assert (_("Train on Fashion-MNIST") == "在 Fashion-MNIST 上训练") == (language == "zh")
    try:
        assert cli.main(["lesson", "resnet"]) == 0
        assert cli.main(["summary", "resnet19"]) == 2
    finally:
        i18n.use("en")
    out, err = capsys.readouterr()
    if language == "zh":  # what a reader reads; the book's names, knobs and numbers as they are
        assert out.startswith("7.6（英文版 8.6）ResNet：捷径让梯度保持下去\n") and \
            "训练：34 层，普通网络：resnet34，quick 预设" in out
        lines = out.splitlines()
        table = lines[lines.index(next(line for line in lines if "首层梯度" in line)):][:3]
        widths = {sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line) for line in table}
        assert len(widths) == 1, table  # its columns line up in a terminal: a Chinese character is two cells
        assert err == "错误：model: 未知模型 'resnet19'；你是不是想找 resnet18, resnet152, resnet101？\n"
    else:
        assert out.startswith("7.6 (English edition 8.6) ResNet: the shortcut keeps the gradient alive\n")
        assert err == "error: model: unknown model 'resnet19'; did you mean resnet18, resnet152, resnet101?\n"


def test_an_errors_english_message_fills_a_marked_word_from_the_same_values_as_text_does():
    err = QuotaError("inside", "{doing} took over {seconds:g} s here", doing=i18n.N_("Training {model}"),
                     seconds=60, model="resnet18")
    assert err.message == err.text() == str(err) == "Training resnet18 took over 60 s here"


def test_a_knobs_error_is_said_in_the_pages_language_even_when_it_was_met_in_another():
    from explorer.models.resnet import ResNetConfig

    with pytest.raises(ConfigError) as met:
        ResNetConfig(blocks=(2, 0))  # first met by an English visitor (and cached, as refusals are)
    assert met.value.text() == met.value.message == "must be at least 1, not 0"
    i18n.use("zh")
    try:
        assert met.value.text() == "至少为 1，而不是 0" and met.value.knob == "blocks"
    finally:
        i18n.use("en")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lang"] = "zh"
    at.query_params["model"] = "resnet18"
    at.run()
    at.sidebar.text_input(key="x.resnet18.blocks").set_value("2, 0, 2, 2").run()
    assert "至少为 1，而不是 0" in [e.value for e in at.sidebar.error]


def test_every_refusal_is_said_in_the_readers_language_with_its_words_and_not_the_visitors(tmp_path):
    """A quota met by an English visitor, an owner's refusal sent through a pickle (as from a worker), and an
    upload's refusal quoting what a visitor sent: each reads in Chinese for a Chinese reader, the marked
    words in it too, and the visitor's own text as it was."""
    import pickle

    from explorer.errors import OwnerError
    from explorer.identity import Visitor
    from explorer.training.admission import Quotas
    from explorer.training.recipes import TrainSettings
    from explorer.training.runs import RunManager
    from explorer.views.uploads import read_upload

    manager = RunManager(tmp_path, quotas=Quotas(runs_per_visitor=0, runs_per_address=9, max_queue=9))
    try:
        with pytest.raises(QuotaError) as quota:
            manager.start("lenet", registry.get("lenet").config, TrainSettings(0.1, 1, 64), Visitor("a" * 32))
        with pytest.raises(OwnerError) as owner:
            manager._check_owner("no-such-run", Visitor("b" * 32), i18n.N_("delete it"))
    finally:
        manager.shutdown()
    with pytest.raises(ConfigError) as bad_value:
        TrainSettings(0.1, 1, 64, init="Stop it")  # a visitor's text that is not a catalog key either way
    assert quota.value.text().startswith("you already have 0 runs")
    owner_later = pickle.loads(pickle.dumps(owner.value))
    i18n.use("zh")
    try:
        assert quota.value.text().startswith("你已有 0 个运行在排队或运行中")
        assert owner_later.text().startswith("只有这次运行的所有者才能删除它；")
        assert bad_value.value.text() == "必须是xavier 或 kaiming，而不是 'Stop it'"
        with pytest.raises(ConfigError) as upload:
            read_upload(b"GIF89a" + bytes(64))
        assert upload.value.text() == "这个文件不是可以读取的图像（请上传 PNG 或 JPEG）"
    finally:
        i18n.use("en")


def test_a_runs_stored_warning_and_error_are_read_in_the_readers_language():
    """Kept in the store as their templates and values, a dead network's warning and a failure's reason are
    read in the language of whoever opens the run; a message stored as plain text reads as it was."""
    import math

    from explorer.training.store import StoreError
    from explorer.training.train import DeadNetwork
    from explorer.training.worker import failure_message

    dead = DeadNetwork(10)
    dead.epoch(math.log(10))  # a whole epoch at chance
    failed = failure_message(StoreError("could not save the weights in {path}: {reason}. The run's metrics are "
                                        "kept; free some space or set EXPLORER_HOME to another directory",
                                        path="/data/weights", reason=i18n.N_("the disk is full")))
    assert i18n.told(dead.message).startswith("The network looks dead: its loss stayed at chance, ln 10 = 2.303")
    assert i18n.told(failed).startswith("could not save the weights in /data/weights: the disk is full.")
    i18n.use("zh")
    try:
        assert i18n.told(dead.message).startswith("这个网络看起来已经死了：它的损失在整整一个迭代周期里都停留在"
                                                  "随机猜测的水平，ln 10 = 2.303。")
        assert i18n.told(failed).startswith("无法把权重保存到 /data/weights：磁盘已满。")
        assert i18n.told("RuntimeError: CUDA error") == "RuntimeError: CUDA error"  # stored before, or a bug's words
    finally:
        i18n.use("en")


def test_numbers_and_the_books_names_stay_as_they_are_in_chinese():
    i18n.use("zh")
    try:
        text = _("Trains **{network}** ({params:,} parameters), {kind} preset: learning rate {lr:g}, {epochs} "
                 "{epoch_word} of {images} images at batch size {batch}, {init} init.").format(
            network="resnet18 (residual=false)", params=11005450, kind="quick", lr=0.05, epochs=2,
            epoch_word=_("epochs"), images="60,000", batch=64, init="Xavier")
        assert "11,005,450" in text and "resnet18 (residual=false)" in text and "学习率" in text
    finally:
        i18n.use("en")
    assert json.loads((i18n.CATALOGS / "zh.json").read_text(encoding="utf-8"))


ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ,;:]+[A-Za-z][A-Za-z'’-]*){2,}")  # three or more words


def shown_texts(at: AppTest) -> list[str]:
    """What a page drew for a visitor to read: headings, text, messages, labels, table headers, chart titles."""
    texts = [e.value for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning",
                                  "error", "success") for e in at.get(kind)]
    texts += [getattr(e, "label", "") or "" for kind in ("metric", "button", "selectbox", "radio", "number_input",
                                                          "text_input", "toggle", "checkbox", "slider")
              for e in at.get(kind)]
    texts += [str(c) for frame in at.dataframe for c in frame.value.columns]
    for chart in at.get("plotly_chart"):
        layout = json.loads(chart.proto.spec)["layout"]
        texts += [str(part.get("title", {}).get("text", "")) for part in (layout, layout.get("xaxis", {}),
                                                                          layout.get("yaxis", {}))]
    return [t for t in texts if t]


def english_left(texts: list[str]) -> list[str]:
    """Runs of three or more English words, once names the book's code and the catalog keep are taken out."""
    keep = {*registry.list_models(), "Fashion-MNIST", "quick", "fast", "book", "xavier", "kaiming", "Xavier",
            "Kaiming", "python -m explorer", "Dive into Deep Learning", "CNN Explorer", "d2l"}
    found = []
    for text in texts:
        text = re.sub(r"`[^`]*`|\b\w+_\w+\b", "", text)  # code, and the book's identifiers (conv_arch)
        for name in sorted(keep, key=len, reverse=True):
            text = text.replace(name, "")
        found += ENGLISH_RUN.findall(text)
    return found


PAGES_IN_CHINESE = {
    "pages/explore.py": {"model": "resnet18"},
    "pages/compare.py": {},
    "pages/train.py": {"model": "lenet"},
    "pages/runs.py": {},
    "pages/inside.py": {"model": "lenet"},
    "pages/lessons.py": {"lesson": "resnet"},
    "pages/board.py": {},
    "pages/catalog.py": {},
}


@pytest.mark.parametrize("page", list(PAGES_IN_CHINESE))
def test_a_page_in_chinese_shows_no_english_sentence(page, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXPLORER_DATA_DIR", tiny_data)
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"lang": "zh", **PAGES_IN_CHINESE[page]}.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    for _round in range(60):  # the Train page measures its estimate in another process first
        if not any(c.value.startswith(("正在工作进程中测量", "等待另外")) for c in at.caption):
            break
        __import__("time").sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = shown_texts(at)
    assert any(re.search("[\u4e00-\u9fff]", t) for t in texts)
    assert english_left(texts) == []
    i18n.use("en")


def test_one_kind_of_punctuation_per_language_in_an_estimate():
    from explorer.training.estimate import Estimate

    i18n.use("zh")
    try:
        assert Estimate(34.0, 100.0, _("measured on this machine")).text == "约 34 秒（在本机测得）"
    finally:
        i18n.use("en")
    assert Estimate(34.0, 100.0, _("measured on this machine")).text == "about 34 s (measured on this machine)"


def test_a_chinese_page_hides_streamlits_english_running_widget():
    from tests.test_app import app

    def styles(at) -> str:
        return " ".join(h.proto.body for h in at.get("html"))

    assert '[data-testid="stStatusWidget"] {display: none;}' in styles(app("pages/explore.py", lang="zh"))
    assert "stStatusWidget" not in styles(app("pages/explore.py", lang="en"))
