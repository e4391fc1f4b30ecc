"""The train step's ceilings (explorer.training.ceiling): each setting timed for real, named, and a
setting that fails a row of the table rather than a crash."""

import dataclasses

import pytest
import torch

from explorer import registry
from explorer.training.ceiling import ceilings, step_rate
from explorer.training.estimate import StepTiming
from explorer.training.loop import bf16_native, default_threads
from explorer.training.recipes import TrainSettings

SMALL = registry.get("lenet-bn").config
SETTINGS = TrainSettings(lr=0.1, epochs=1, batch_size=16)


def test_each_memory_format_and_thread_count_is_timed_and_named():
    run = StepTiming(2.0, 1.0)  # what a run measured: contiguous, in float32 (only a compiled row follows it)
    rows = ceilings(SMALL, SETTINGS, batches=5, run=run, compiled=False)
    threads = sorted({1, default_threads()})
    eager = [r for r in rows if not r.bf16]
    assert [(r.memory_format, r.threads) for r in eager] == [(f, n) for f in ("contiguous", "channels_last")
                                                             for n in threads]
    assert all(r.images_per_sec > 0 and not r.failed and not r.compiled for r in rows)
    assert len({r.setting for r in rows}) == len(rows)
    assert any(r.bf16 for r in rows) == bf16_native()  # timed where the CPU has it, and only there


@pytest.mark.parametrize(("flags", "native"), [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                               ("fpu sse sse2 avx2 avx512f fma", False)])
def test_bfloat16_is_native_only_where_the_cpu_lists_its_instructions(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n")
    assert bf16_native("cpu", cpuinfo) is native
    assert bf16_native("cpu", tmp_path / "missing") is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU here would time it")
def test_a_setting_that_fails_is_a_row_that_says_why():
    row = step_rate(SMALL, dataclasses.replace(SETTINGS, device="cuda"), batches=4, channels_last=False, threads=1)
    assert row.images_per_sec == 0 and row.setting == "eager, contiguous, 1 threads"
    assert row.failed.startswith(("RuntimeError", "AssertionError"))


def test_a_gpu_takes_bfloat16_as_a_cpu_does_where_measured_faster_and_float16_where_it_has_none(tmp_path,
                                                                                             monkeypatch):
    """No GPU has been lent to this project: the GPU path's choices are checked against a fake one, whose
    torch.cuda answers as a GPU with (then without) bfloat16 would."""
    from explorer.training.estimate import saved_step, step_key
    from explorer.training.loop import autocast_dtype
    from explorer.training.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    # measured before a GPU's bfloat16 was timed: no bfloat16 rate
    store.save_calibration(step_key(SMALL, 64, "cuda", 1), {"contiguous": 900.0, "channels_last": 1000.0})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert bf16_native("cuda")
    assert autocast_dtype("cuda", use_bf16=True) is torch.bfloat16  # measured BF16_GAIN faster: taken
    assert autocast_dtype("cuda", use_bf16=False) is None           # not faster enough: float32, as on a CPU
    assert saved_step(SMALL, 64, "cuda", 1, store) is None  # a GPU with bfloat16 measures it before a run
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert not bf16_native("cuda")
    assert autocast_dtype("cuda", use_bf16=False) is torch.float16  # an older GPU: float16 and a loss scaler
    assert saved_step(SMALL, 64, "cuda", 1, store).use_channels_last  # nothing more to time: the saved one serves
    assert autocast_dtype("cpu", use_bf16=True) is torch.bfloat16 and autocast_dtype("cpu", use_bf16=False) is None
