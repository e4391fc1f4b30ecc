"""The class board: runs their owners shared, drawn as one experiment, never who trained them."""

import json

import pandas as pd
import pytest

from explorer.errors import OwnerError
from explorer.identity import Visitor
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunManager
from explorer.views.board import board_chart, board_table, pareto_front, time_chart
from tests.test_app import app
from tests.test_app_train import array_length

STUDENTS = [Visitor(f"visitor-{name}-{i}f3a9c") for i, name in enumerate(("ann", "bo", "cy", "dee"))]


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """Four students, one short run each; the first three share theirs."""
    from tests.conftest import write_dataset

    data = str(write_dataset(tmp_path_factory.mktemp("data")))
    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, max_running=2, threads=1, data_dir=data)
    runs = []
    for student, name in zip(STUDENTS, ("lenet", "lenet-bn", "alexnet", "lenet"), strict=True):
        runs.append(manager.start(name, preset(name, "quick").config, TrainSettings(lr=0.1, epochs=1, batch_size=64,
                                                                                     train_subset=256),
                                  student, name=f"{student.id}'s secret name"))
    for run_id in runs:
        assert manager.wait(run_id, timeout=180).status == "done"
    for student, run_id in zip(STUDENTS[:3], runs, strict=False):
        manager.share(run_id, True, student)
    yield manager, runs, home, data
    manager.shutdown()


def test_a_student_sees_the_shared_runs_an_admin_all_and_only_an_owner_shares(classroom):
    manager, runs, _, _ = classroom
    assert {r.id for r in manager.board(STUDENTS[3])} == set(runs[:3])  # dee did not share hers
    assert {r.id for r in manager.board(Visitor("admin", admin=True))} == set(runs)
    with pytest.raises(OwnerError):
        manager.share(runs[3], True, STUDENTS[0])  # not ann's to share
    manager.share(runs[0], False, STUDENTS[0])
    assert runs[0] not in {r.id for r in manager.board(STUDENTS[3])}
    manager.share(runs[0], True, STUDENTS[0])


def test_the_board_draws_one_point_per_shared_run_and_names_nobody(classroom):
    manager, runs, _, _ = classroom
    table = board_table(manager.board(STUDENTS[3]))
    assert len(table) == 3 and set(table.architecture) == {"LeNet", "AlexNet"}
    assert not {"owner", "name", "id", "run"} & set(table.columns)
    figure = board_chart(table, "params")
    points = [t for t in figure.data if t.mode == "markers"]
    assert sum(len(t.x) for t in points) == 3
    drawn = figure.to_json()
    assert not any(s.id in drawn for s in STUDENTS) and "secret name" not in drawn
    for chart in (figure, time_chart(table)):  # an accuracy axis ends at 1, not at 1.5
        assert tuple(chart.layout.yaxis.range) == (0.0, 1.0)


def test_the_pareto_front_keeps_the_runs_no_other_beats_on_both_counts():
    table = pd.DataFrame({"params": [10, 20, 30, 40, 15], "best_test_acc": [0.5, 0.7, 0.6, 0.9, 0.4]})
    assert list(pareto_front(table, "params").params) == [10, 20, 40]


def test_the_board_page_draws_three_points_and_no_owner(classroom, monkeypatch):
    manager, runs, home, data = classroom
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", data)
    monkeypatch.setenv("EXPLORER_SHARED", "1")  # a class server: the visitor is a student, not the owner
    at = app("pages/board.py", state={"visitor": STUDENTS[3]})
    size = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(array_length(t["x"]) for t in size["data"] if t["mode"] == "markers") == 3
    page = json.dumps([json.loads(c.proto.spec) for c in at.get("plotly_chart")]) + at.dataframe[0].value.to_csv()
    assert not any(s.id in page for s in STUDENTS) and "secret name" not in page
