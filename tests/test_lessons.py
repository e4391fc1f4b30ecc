"""Lessons: one per section, each a claim, a comparison, a pair of runs, and what the pair measured."""

import dataclasses

import pytest

from explorer import i18n, lessons
from explorer.errors import ExplorerError
from explorer.identity import Visitor
from explorer.summary import summarize
from explorer.training.admission import Quotas
from explorer.training.dynamics import STATISTICS
from explorer.training.recipes import check_trainable
from explorer.training.runs import RunManager
from explorer.views.tables import lesson_table
from tests.test_app import app
from tests.test_cli import run_cli


def test_one_lesson_per_section_numbered_as_both_editions_number_it():
    assert [x.section for x in lessons.LESSONS] == ["6.6", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7"]
    assert [x.english for x in lessons.LESSONS] == ["7.6", "8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7"]
    for lesson in lessons.LESSONS:
        assert lessons.get(lesson.name) is lesson and lessons.get(lesson.section) is lesson
        assert lesson.watch in STATISTICS and lesson.claim.count(". ") >= 1
        for side in lesson.pair:
            check_trainable(side.config(), side.train_settings())  # each side trains as it is
        for _, config in lessons.compare_configs(lesson):
            summarize(config)
    with pytest.raises(ExplorerError, match="no lesson 'nope'; choose from lenet"):
        lessons.get("nope")


def test_a_pair_differs_in_what_its_lesson_is_about():
    resnet = lessons.get("resnet")
    (a, b) = resnet.pair
    assert a.config().changes(b.config()) == {"residual": True}
    assert a.train_settings() == b.train_settings()
    batchnorm = lessons.get("batchnorm")
    first, second = (side.train_settings() for side in batchnorm.pair)
    assert (first.lr, first.epochs, first.batch_size) == (second.lr, second.epochs, second.batch_size)
    lenet = lessons.get("lenet")
    first, second = (side.train_settings() for side in lenet.pair)
    assert dataclasses.replace(first, lr=0.1) == second
    # the cost table compares the pair's own networks: the 34-layer quick ones, not two book ResNet-18s
    (_, residual), (_, plain) = lessons.compare_configs(resnet)
    assert (residual, plain) == (a.config(), b.config())
    assert [round(summarize(c).totals.params / 1e4) for c in (residual, plain)] == [133, 132]
    lenet_costs = [summarize(c).totals.params for _, c in lessons.compare_configs(lenet)]
    assert lenet_costs[0] == lenet_costs[1]  # 6.6 compares learning rates: one network, twice


def test_a_lessons_pair_is_queued_whole_or_not_at_all(tmp_path, tiny_data):
    manager = RunManager(tmp_path / "home", data_dir=tiny_data, quotas=dataclasses.replace(
        Quotas.from_env(), runs_per_visitor=1), max_running=1)
    try:
        with pytest.raises(ExplorerError, match="runs"):
            lessons.queue_pair(manager, lessons.get("lenet"), Visitor("bob"))
        assert manager.store.list() == []  # the first was taken back
    finally:
        manager.shutdown()


def test_a_measurement_trains_both_sides_and_is_kept_with_where_and_when(tiny_data, tmp_path):
    side = lessons.Side("tiny", "lenet", settings={"epochs": 1, "train_subset": 256, "batch_size": 32})
    lesson = dataclasses.replace(lessons.get("lenet"), pair=(side, dataclasses.replace(side, label="tinier")))
    results = lessons.measure(lesson, tiny_data, threads=1)
    assert [r.label for r in results] == ["tiny", "tinier"]
    assert results[0].params == summarize(side.config()).totals.params
    assert all(0 <= r.test_acc <= 1 and r.first_grad > 0 and r.last_grad > 0 and r.seconds > 0 for r in results)
    path = tmp_path / "measured.json"
    lessons.save(lesson, results, path)
    where, kept = lessons.measured(lesson, path)
    assert kept == results and "CPU cores" in where
    assert lessons.measured(lessons.get("resnet"), path) is None  # other lessons are not invented


def test_the_lessons_page_shows_the_claim_the_cost_and_the_kept_measurement():
    at = app("pages/lessons.py", lesson="resnet")
    assert at.title[0].value == "7.6 ResNet: the shortcut keeps the gradient alive"
    assert any("Dive into Deep Learning 8.6" in c.value for c in at.caption)
    cost = at.dataframe[0].value
    assert list(cost.params) == ["1.33 M", "1.32 M"]  # the pair's own networks, each row saying which side
    assert list(cost.network) == ["34 layers, residual", "34 layers, plain"]
    exercise = next(link for link in at.get("page_link") if "exercise" in link.proto.label)
    assert exercise.proto.label.startswith("The book's exercise 7.6.1 (English edition 8.6.1): What are the major")
    kept = lessons.measured(lessons.get("resnet"))
    if kept is None:
        assert any("Not measured yet" in i.value for i in at.info)
    else:
        assert at.dataframe[1].value.equals(lesson_table(kept[1]))  # the measurement, as kept
    assert at.query_params["lesson"] == "resnet"
    # a lesson that does not exist: said so, the URL kept as it was
    at = app("pages/lessons.py", lesson="mobilenet")
    assert "There is no lesson mobilenet" in at.error[0].value
    assert at.query_params["lesson"] == "mobilenet"


def test_the_kept_measurements_are_real_and_say_what_the_lessons_claim():
    """The file in the repo came from `python -m explorer lessons --measure` on the real data: every
    lesson is there, each side's size is its network's, and the claims the tables carry hold."""
    kept = {lesson.name: lessons.measured(lesson) for lesson in lessons.LESSONS}
    assert all(kept.values()), [name for name, k in kept.items() if k is None]
    for lesson in lessons.LESSONS:
        _, results = kept[lesson.name]
        assert [r.label for r in results] == [side.label for side in lesson.pair]
        assert [r.params for r in results] == [summarize(side.config()).totals.params for side in lesson.pair]
    _, (residual, plain) = kept["resnet"]
    assert residual.test_acc > 0.5 and plain.test_acc < 0.2  # the plain 34 layers did not learn
    assert plain.first_grad < 1e-4 * residual.first_grad     # no gradient reached their first layer
    _, (lenet, with_bn) = kept["batchnorm"]
    assert with_bn.test_acc > lenet.test_acc


def test_the_cli_lists_the_lessons_and_prints_one():
    out = run_cli("lessons")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == len(lessons.LESSONS)
    out = run_cli("lesson", "7.6")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("7.6 (English edition 8.6) ResNet") and "Train: 34 layers, plain" in out.stdout
    refused = run_cli("lesson", "nope")
    assert refused.returncode != 0 and "no lesson 'nope'" in refused.stderr and "Traceback" not in refused.stderr


def test_the_verdict_is_made_from_the_measured_numbers():
    a = lessons.Result("residual", "resnet34", 1, 1, 0.6242, 1.3, 10.4, 0.78, 1.04)
    b = dataclasses.replace(a, label="plain", test_acc=0.1, first_grad=5.5e-11, seconds=7.2)
    said = ('"residual" reached 62.4% test accuracy, 52.4 points above "plain" (10.0%); "residual" trained in 10 s, '
            '"plain" in 7 s; the gradient at the first layer of "plain" was 7e-11 times that of "residual".')
    assert lessons.verdict([a, b]) == said
    assert lessons.verdict([b, a]).startswith('"residual" reached 62.4% test accuracy, 52.4 points above')  # no sign
    assert "gradient" not in lessons.verdict([a, dataclasses.replace(b, first_grad=0.5)])  # within 100x: not said
    assert lessons.verdict([dataclasses.replace(b, first_grad=0.0), a]).endswith(  # not "0 times", not "inf"
        '; no gradient reached the first layer of "plain".')
    assert lessons.verdict([a, dataclasses.replace(b, test_acc=a.test_acc)]).startswith(
        '"residual" and "plain" both reached 62.4%')
    i18n.use("zh")
    try:
        assert "比“34 层，普通网络”（10.0%）高 52.4 个百分点" in lessons.verdict(
            [dataclasses.replace(a, label="34 layers, residual"), dataclasses.replace(b, label="34 layers, plain")])
    finally:
        i18n.use("en")


def test_a_lessons_claims_agree_with_its_kept_table():
    """7.5 once said batch norm trains faster while its own time column showed 16 s against 12 s."""
    for lesson in lessons.LESSONS:
        kept = lessons.measured(lesson)
        if kept and "faster" in lesson.claim:
            first, second = kept[1]
            assert second.seconds < first.seconds, lesson.name


def test_a_visitors_finished_pair_is_read_in_the_kept_measurements_columns(tmp_path, tiny_data):
    lesson = lessons.get("lenet")
    side = dataclasses.replace(lesson.pair[0], settings={"epochs": 1, "train_subset": 256, "batch_size": 32})
    manager = RunManager(tmp_path / "home", data_dir=tiny_data, threads=1)
    try:
        run_id = manager.start(side.model, side.config(), side.train_settings(), preset="quick")
        record = manager.wait(run_id, timeout=120).record
        result = lessons.result_of(side, record, manager.store)
        assert result.test_acc == record.test_acc and result.params == summarize(side.config()).totals.params
        assert result.first_grad > 0 and result.last_grad > 0 and result.seconds == record.seconds
        assert lessons.result_of(side, dataclasses.replace(record, status="running"), manager.store) is None
    finally:
        manager.shutdown()


def test_docs_lessons_is_generated_from_the_kept_file_byte_for_byte():
    """The measured tables in docs/ are made by `python -m explorer lessons --markdown`, never typed: a
    measurement kept anew, or a verdict worded anew, without regenerating the page fails here."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "lessons.md").read_text()
    begin = text.index("-->\n", text.index("<!-- generated: lessons measured")) + len("-->\n")
    assert text[begin:text.index("<!-- end generated -->")] == lessons.markdown()
    out = run_cli("lessons", "--markdown")
    assert out.returncode == 0 and out.stdout == lessons.markdown()


def test_a_lessons_runs_are_named_in_each_readers_language(tmp_path, tiny_data):
    from explorer.i18n import said_name

    manager = RunManager(tmp_path / "home", data_dir=tiny_data, max_running=1)
    try:
        first, second = lessons.queue_pair(manager, lessons.get("lenet"), Visitor("bob"))
        for run_id in (first, second):
            manager.stop(run_id, Visitor("bob"))
        record = manager.store.get(first)
        assert record.name == "6.6 lr 0.9, the book's" and record.label == "6.6 lr 0.9, the book's"
        i18n.use("zh")
        try:  # queued from an English page, read on a Chinese one
            assert record.label == "6.6 学习率 0.9（书中的设置）"
            assert said_name("6.6 {x} lr 0.1") == "6.6 {x} lr 0.1"  # what a visitor typed stays as typed
            assert said_name("my lr 0.1") == "my lr 0.1"
        finally:
            i18n.use("en")
    finally:
        manager.shutdown()
