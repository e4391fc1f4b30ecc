"""The exercise catalog: both editions' exercises, numbered as each numbers them, every setup a config the
CLI, the summary and the pages accept; the Exercises page and CLI show them."""

import json
from pathlib import Path

import pytest
import torch

from explorer import exercises, registry
from explorer.cli import main
from explorer.summary import summarize
from tests.test_app import app

# the '练习' and 'Exercises' sections of the books' sources, counted per section (d2l-zh 2.0, d2l-en 1.0)
BOOKS = {"zh": {"6.6": 4, "7.1": 5, "7.2": 4, "7.3": 4, "7.4": 3, "7.5": 7, "7.6": 5, "7.7": 5},
         "en": {"7.6": 5, "8.1": 8, "8.2": 4, "8.3": 6, "8.4": 5, "8.5": 7, "8.6": 5, "8.7": 5, "8.8": 4}}


def test_one_entry_per_exercise_of_both_editions_numbered_as_each_edition_numbers_them():
    for edition, counts in BOOKS.items():
        found = exercises.of_edition(edition)
        assert {s: sum(e.section == s for e in found) for s in counts} == counts
        assert len(found) == sum(counts.values())
        for section, n in counts.items():
            assert [e.number for e in found if e.section == section] == list(range(1, n + 1))
    assert len(exercises.EXERCISES) == 37 + 49 and len(exercises.BY_ID) == 86


def test_the_same_exercise_in_both_editions_links_both_ways():
    for e in exercises.EXERCISES:
        if e.same:
            other = exercises.get(e.same)
            assert other.edition != e.edition and other.same == e.id, e.id


def test_every_setup_summarizes_and_builds():
    for e in exercises.EXERCISES:
        assert e.kind in exercises.KINDS
        assert e.setups or e.kind in ("conceptual", "out of scope"), e.id
        for setup in e.setups:
            config = setup.built()
            assert summarize(config).totals.params > 0
            with torch.device("meta"):
                assert registry.build(config) is not None


def test_every_exercise_that_is_not_conceptual_or_out_of_scope_is_set_up():
    for edition in BOOKS:
        coverage = {e.coverage for e in exercises.of_edition(edition)}
        assert "not" not in coverage
    out = [e.id for e in exercises.EXERCISES if e.kind == "out of scope"]
    assert all(exercises.get(i).note for i in out)  # each says why


def test_the_json_lists_setups_that_the_summary_command_accepts(capsys):
    assert main(["exercises", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [e.id for e in exercises.EXERCISES]
    zh = {e["id"]: e for e in listed}["zh-7.6-3"]
    assert zh["kind"] == "measurement" and zh["same"] == "en-8.6-3" and "瓶颈" in zh["question_zh"]
    for entry in listed:
        for setup in entry["setups"]:
            changes = [f"{k}={json.dumps(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v}"
                       for k, v in setup["config"].items()]
            args = ["summary", setup["model"], *(a for c in changes for a in ("--set", c)), "--format", "json"]
            assert main(args) == 0, (entry["id"], args)
            capsys.readouterr()


def test_one_exercise_on_the_command_line(capsys):
    assert main(["exercise", "en-8.5-4"]) == 0
    out = capsys.readouterr().out
    assert "en-8.5-4" in out and "removes only the mean" in out
    assert "python -m explorer summary lenet-bn-scratch --set norm_stats=mean" in out
    assert main(["exercise", "zh-7.3-3"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 1.99 M" in out and "memory to predict, batch 128" in out
    assert main(["exercise", "zh-9.9-9"]) == 2
    assert "no exercise 'zh-9.9-9'" in capsys.readouterr().err


def test_a_measurement_is_computed_from_its_own_setups():
    answer = dict(exercises.answer(exercises.get("zh-7.1-4")))
    layers = summarize(registry.get("alexnet").config).layers
    leaves = layers[layers.is_leaf]
    dense = leaves[leaves.type == "Linear"].params.sum() / leaves.params.sum()
    assert answer["parameters in the dense layers"] == f"{dense:.0%}" and dense > 0.9  # the dense layers hold them
    sizes = exercises.answer(exercises.get("en-8.6-2"))
    assert [label for label, _ in sizes] == ["ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101", "ResNet-152"]


def test_docs_exercises_md_is_the_catalog_as_generated():
    text = (Path(__file__).parent.parent / "docs" / "exercises.md").read_text()
    assert text == exercises.markdown()
    assert "| all | 27 | 3 | 0 | 4 | 3 |" in text  # 动手学深度学习: what is answered, partly, conceptual, out of scope


def test_the_exercises_page_shows_the_question_and_sets_it_up():
    at = app("pages/exercises.py", exercise="zh-7.6-3")
    assert at.title[0].value == "Exercise zh-7.6-3"
    assert "bottleneck block" in at.markdown[0].value
    links = {link.label: link for link in at.get("page_link")}
    compare = links["Compare basic blocks (ResNet-34) with bottleneck blocks (ResNet-50)"]
    assert compare.proto.page.endswith("compare") or "compare" in compare.proto.page
    assert "The same exercise in Dive into Deep Learning: en-8.6-3" in links
    assert at.query_params["exercise"] == "zh-7.6-3"


def test_the_exercises_page_in_chinese_and_an_unknown_exercise():
    at = app("pages/exercises.py", exercise="en-8.5-4", lang="zh")
    assert at.title[0].value == "练习 en-8.5-4" and "精简版" in at.markdown[0].value
    wrong = app("pages/exercises.py", exercise="zh-7.6-99")
    assert "There is no exercise zh\\-7\\.6\\-99" in wrong.error[0].value and not wrong.title  # escaped: text
    assert wrong.query_params["exercise"] == "zh-7.6-99"  # the URL is kept, not silently replaced


@pytest.mark.parametrize("lesson, edition, first", [("resnet", "en", "en-8.6-1")])
def test_a_lesson_links_its_sections_exercises(lesson, edition, first):
    at = app("pages/lessons.py", lesson=lesson)
    links = [link for link in at.get("page_link") if "exercises" in link.label]
    assert links and f"section {first.split('-')[1]}" in links[0].label
