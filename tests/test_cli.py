"""The CLI as a user runs it: real subprocesses for exit codes, in-process calls for round trips."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from explorer import registry
from explorer.cli import main
from explorer.summary import summarize

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, timeout=120)


def test_list_prints_every_model(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == registry.list_models()


def test_summary_json_round_trip(capsys):
    assert main(["summary", "vgg11", "--set", "ratio=4", "--set", "conv_arch=((1,64),(1,128),(2,256))",
                 "--resolution", "64", "--batch-size", "8", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    config = registry.get("vgg11").config.__class__(ratio=4, conv_arch=((1, 64), (1, 128), (2, 256)),
                                                     resolution=64)
    expected = summarize(config, batch_size=8)
    assert data["totals"]["params"] == expected.totals.params
    assert data["totals"]["trainable_params"] == expected.totals.trainable_params
    assert data["totals"]["mult_adds"] == expected.totals.mult_adds
    assert len(data["layers"]) == len(expected.layers)
    assert data["layers"][0]["output_shape"] == [16, 32, 32]


def test_summary_csv_and_table(capsys):
    assert main(["summary", "lenet", "--format", "csv"]) == 0
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.columns[:5]) == ["path", "depth", "type", "output_shape", "params"] and len(table) == 12
    assert table[table.is_leaf].params.sum() == 61_706  # every weight of the book's LeNet, once
    assert main(["summary", "lenet"]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and "Conv2d" in out


def test_invalid_config_exits_2_with_one_line():
    result = run_cli("summary", "vgg11", "--resolution", "16")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "resolution" in result.stderr and "Traceback" not in result.stderr


def test_values_are_parsed_not_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    result = run_cli("summary", "lenet", "--set", f"channels=__import__('os').system('touch {marker}')")
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert not marker.exists()


def test_code_export_prints_a_runnable_file(tmp_path, capsys):
    assert main(["code", "resnet18", "--set", "blocks=(1,1)", "--set", "channels=(8,16)"]) == 0
    path = tmp_path / "net.py"
    path.write_text(capsys.readouterr().out)
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    config = registry.get("resnet18").config.__class__(blocks=(1, 1), channels=(8, 16))
    assert f"parameters: {summarize(config).totals.params}" in result.stdout


def test_the_efficiency_is_the_mean_of_the_middle_half_of_the_stretches():
    from explorer.bench import TrainBench

    # ours over the ceiling per stretch: 0.5 (ours lost a stretch to the machine), 0.9 ... 2.0 (the ceiling did)
    ratios = [0.5, 0.9, 0.95, 1.0, 1.0, 1.05, 1.1, 2.0]
    bench = TrainBench("lenet-bn", 28, 256, 40, 5000.0, tuple((1000.0, 1000.0 * r) for r in ratios))
    assert bench.efficiency == pytest.approx((0.95 + 1.0 + 1.0 + 1.05) / 4)
    assert bench.quartiles == pytest.approx((0.9125, 1.0875))


def test_each_kept_run_of_bench_train_is_a_row_of_its_table(tmp_path):
    from explorer import measured
    from explorer.bench import TrainBench
    from explorer.training.ceiling import Ceiling

    ceilings = (Ceiling("contiguous", 2, False, False, 17560.7, 0.1),
                Ceiling("channels_last", 2, False, False, 13793.9, 0.1),
                Ceiling("contiguous", 2, False, True, 18705.3, 0.1),
                Ceiling("contiguous", 2, True, False, 21601.0, 25.2))
    for ratio in (0.97, 1.01):
        pairs = tuple((14000.0, 14000.0 * ratio * f) for f in (0.9, 1.0, 1.0, 1.1))
        measured.add_train(TrainBench("lenet-bn", 28, 256, 40, 7000.0, pairs, ceilings, 1), tmp_path)
    runs = measured.kept_train(tmp_path)
    assert [b.efficiency for _, _, b in runs] == pytest.approx([0.97, 1.01]) and runs[0][2].ceilings == ceilings
    table = measured.train_markdown(tmp_path).splitlines()
    first = f"| {runs[0][0]}, {measured.machine()} | lenet-bn, 256 (40 x 1) |"
    rows = [line for line in table if line.startswith(first)]
    assert len(rows) == 2
    # the eager and best ceilings; the medians of the stretches; the middle half's mean and the quartiles of
    # 0.873, 0.97, 0.97 and 1.067; d2l's; ours over d2l's
    assert "| 17,561 | 21,601 (compiled, contiguous, 2 threads) | 14,000 | 13,580 | 0.97 (0.90-1.04) | 7,000 | 1.94 |" \
        in rows[0]
    assert measured.kept_train(tmp_path / "none") == []


def test_bench_train_prints_the_ceilings_both_pipelines_efficiency_and_ratio(tmp_path):
    from explorer.training.estimate import saved_step
    from explorer.training.loop import default_threads
    from explorer.training.store import RunStore
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data", n_train=600, n_test=50)
    result = run_cli("bench", "train", "lenet-bn", "--batches", "8", "--batch-size", "64", "--rounds", "2",
                     "--data-dir", str(data), "--home", str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    settings = [line.strip() for line in lines if line.startswith("  ")]  # each setting of the step, timed
    assert [s.split(",")[0] for s in settings] == ["eager"] * (len(settings) - 1) + ["compiled"]
    assert all("images/s" in s or "failed: " in s for s in settings)
    # the compiled step is kept beside the measurement a run of this network and batch takes its settings from
    # (where the machine was idle enough for it to be kept at all)
    timing = saved_step(registry.get("lenet-bn").config, 64, "cpu", default_threads(),
                        RunStore(tmp_path / "home" / "runs.sqlite"))
    compiled = re.search(r"compiled, .*?(\d+\.\d) images/s after a (\d+\.\d) s compile", settings[-1])
    if timing is not None and compiled:
        kept = (round(timing.compiled_rate, 1), round(timing.compile_seconds, 1))
        assert kept == tuple(map(float, compiled.groups()))
        assert ("bf16 autocast" in settings[-1]) is timing.use_bf16  # in the format and precision a run takes
        assert settings[-1].split(", ")[1] == ("channels_last" if timing.use_channels_last else "contiguous")
    rates = {line.split("  ")[0]: float(re.search(r"(\d+\.\d) images/s", line)[1]) for line in lines
             if line.startswith(("eager ceiling", "best ceiling", "ceiling", "ours", "d2l"))}
    assert list(rates) == ["eager ceiling", "best ceiling", "ceiling", "ours", "d2l pipeline"]
    assert all(v > 0 for v in rates.values()) and rates["best ceiling"] >= rates["eager ceiling"]
    rates["d2l"] = rates["d2l pipeline"]
    # 600 images of 64: a report at every step, so each step from the warm-up's end to the 8th is a stretch
    # of its own, timed beside the step alone, in each of the 2 runs
    said = re.fullmatch(r"efficiency (\d\.\d\d) \(the mean of the middle half of (\d+) stretches between two "
                        r"reports of ours in 2 runs, each against the step alone timed on either side; quartiles "
                        r"(\d\.\d\d)-(\d\.\d\d)\)", lines[-2])
    assert said, lines[-2]
    efficiency, stretches, low, high = float(said[1]), int(said[2]), float(said[3]), float(said[4])
    assert stretches == 2 * (8 - 3) and 0 < low - 0.01 <= efficiency <= high + 0.01
    assert lines[-1].startswith("ratio ") and abs(float(lines[-1].split()[1]) - rates["ours"] / rates["d2l"]) < 0.02
    no_rounds = run_cli("bench", "train", "lenet-bn", "--rounds", "0", "--data-dir", str(data))
    assert no_rounds.returncode == 2 and "rounds: must be a whole number of at least 1" in no_rounds.stderr
    too_many = run_cli("bench", "train", "lenet-bn", "--batches", "50", "--data-dir", str(data))
    assert too_many.returncode == 2 and "the data has 600" in too_many.stderr
    big = write_dataset(tmp_path / "big", n_train=6400, n_test=50)  # 100 steps of 64: a report every 4 steps
    too_few = run_cli("bench", "train", "lenet-bn", "--batches", "6", "--batch-size", "64", "--data-dir", str(big))
    assert too_few.returncode == 2 and "must be at least 8 here" in too_few.stderr


def test_train_and_runs_commands(tmp_path):
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data", n_train=256, n_test=50)
    home = tmp_path / "home"
    result = run_cli("train", "lenet-bn", "--epochs", "2", "--minutes", "0.5", "--batch-size", "32", "--data-dir",
                     str(data), "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("run ") and " done: loss " in result.stdout and "test acc" in result.stdout
    assert re.search(r"Memory format (contiguous|channels_last): [\d,]+ training images/s against", result.stdout)
    assert "Time budget 0.5 min: 2 of at most 2 epochs trained" in result.stdout  # 256 images: both fit
    listed = run_cli("runs", "--home", str(home))
    assert "lenet-bn" in listed.stdout and "done" in listed.stdout and "as many as fit in 0.5 min" in listed.stdout
    bad = run_cli("train", "lenet-bn", "--lr", "-1", "--data-dir", str(data), "--home", str(home))
    assert bad.returncode == 2 and "lr" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("train", "lenet", "--data-dir", str(tmp_path / "nowhere"), "--home", str(home))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


@pytest.mark.parametrize("after", ["running", "first report"])
def test_ctrl_c_of_train_stops_the_run_cleanly(tmp_path, after):
    """Ctrl-C in a terminal reaches the whole process group: the CLI, its forkserver and the worker."""
    import os
    import signal
    import time

    from explorer.training.store import RunStore
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data")
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "train", "lenet-bn", "--epochs", "200", "--batch-size",
                             "8", "--data-dir", str(data), "--home", str(home)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 60

    def ready() -> bool:
        runs = _stored(home)
        if after == "running":
            return any(r.status == "running" for r in runs)
        return any(len(RunStore(home / "runs.sqlite").metrics(r.id)) for r in runs)  # a report is stored

    while not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # stopped by Ctrl-C: it did not train to its end
    assert "Traceback" not in err and "stopped" in out
    (record,) = RunStore(home / "runs.sqlite").list()
    assert record.status == "stopped"


def _sigint_as_in_a_terminal() -> None:
    """A terminal's foreground job takes SIGINT's default action; a job started in the background of a script
    (as a CI runner may start pytest) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stored(home):
    from explorer.training.store import RunStore

    path = home / "runs.sqlite"
    return RunStore(path).list() if path.exists() else []


def test_a_kept_benchmark_makes_its_table_and_the_resources_exercise_shows_the_measured_time(tmp_path, monkeypatch):
    from explorer import bench, exercises, measured

    rows = list(bench.bench_inference(["lenet", "nin"], repeat=1, batch=2))
    assert [r.name for r in rows] == ["lenet", "nin"] and all(r.latency_ms > 0 and r.images_per_sec > 0 for r in rows)
    measured.save("inference", rows, tmp_path)
    table = measured.inference_markdown(tmp_path)
    assert table.startswith("Measured ") and "| nin | 224x224 |" in table and "bench inference --save" in table
    monkeypatch.setattr(measured, "MEASURED", tmp_path)
    answer = dict(exercises.answer(exercises.get("zh-7.3-3")))  # NiN's resources
    (said, value), = [(k, v) for k, v in answer.items() if k.startswith("time to predict one image")]
    assert value == f"{rows[1].latency_ms:.1f} ms" and measured.machine() in said
    monkeypatch.setattr(measured, "MEASURED", tmp_path / "none")
    assert not any(k.startswith("time to predict") for k, _ in exercises.answer(exercises.get("zh-7.3-3")))


def test_bench_speedrun_trains_each_seed_in_a_fresh_process_and_its_table_and_sentence_come_from_it(tmp_path):
    from explorer import bench, measured
    from explorer.training.estimate import human_duration
    from explorer.training.recipes import preset
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data", n_train=256, n_test=100)
    result = run_cli("bench", "speedrun", "--seeds", "1", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    seed, epochs, acc, run_s, process_s, rate = row.split()
    assert header.split()[:3] == ["seed", "epochs", "test"] and seed == "0" and 0 <= float(acc) <= 1
    assert 0 < float(run_s) <= float(process_s) and float(rate) > 0  # the process: its start and torch's import too
    # 256 images an epoch: all the preset's epochs fit in its minutes
    assert int(epochs) == preset("speedrun", "speedrun").settings.epochs
    runs = [bench.SeedRun(0, 0.9342, 513.3, 913.4, 515.8, 17), bench.SeedRun(1, 0.9361, 445.3, 1033.3, 447.8, 16)]
    measured.save("speedrun", runs, tmp_path)
    table = measured.speedrun_markdown(tmp_path)
    params = summarize(registry.get("speedrun").config).totals.params
    assert "| 1 | 16 | 0.9361 | 445 | 448 | 1033 |" in table and f"{params:,} parameters" in table
    said = measured.speedrun_said(tmp_path)
    assert "93.42% to 93.61% test accuracy over 2 seeds in 16-17 epochs" in said
    assert f"at most {human_duration(515.8)}" in said
    assert measured.speedrun_said(tmp_path / "none") is None
