"""The measurement helper gives exact numbers where exact numbers exist (bytes) and sane ones elsewhere."""

import platform
import time

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.checkpoints import checkpoint_bytes
from tutorlib.training.loop import TrainConfig, train
from tutorlib.training.measure import (
    ASSUMED_WATTS_PER_CORE,
    EnergyMeter,
    PeakMemory,
    older_objects_set_aside,
    optimizer_state_bytes,
    parameter_bytes,
    peak_memory_mb,
    run_cost,
    summarize_step_times,
    time_steps,
)
from tutorlib.training.parameters import count_parameters


def half_frozen_model():
    """tiny-bert with frozen embeddings (its unused [CLS] pooler is removed by SequenceClassifier)."""
    model, tok = load_model("tiny-bert")
    assert model.encoder.pooler is None
    for p in model.encoder.embeddings.parameters():
        p.requires_grad_(False)
    return model, tok


def test_parameter_counts_and_bytes():
    model, _ = half_frozen_model()
    total, trainable = count_parameters(model).total, count_parameters(model).trainable
    frozen = sum(p.numel() for p in model.encoder.embeddings.parameters())
    assert 0 < trainable == total - frozen
    assert parameter_bytes(model) == 4 * total  # fp32
    assert parameter_bytes(model, trainable_only=True) == 4 * trainable
    assert parameter_bytes(model.to(torch.bfloat16)) == 2 * total


def test_adamw_state_is_two_fp32_moments_per_trainable_parameter():
    model, tok = half_frozen_model()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    assert optimizer_state_bytes(optimizer) == 0  # lazily created
    batch = dict(tok(["a b", "c"], return_tensors="pt", padding=True), labels=torch.tensor([0, 1]))
    model(**batch).loss.backward()
    optimizer.step()
    n = count_parameters(model).trainable
    assert optimizer_state_bytes(optimizer) == 2 * 4 * n
    step_counters = optimizer_state_bytes(optimizer, include_step=True) - 2 * 4 * n
    assert step_counters == len(trainable) * optimizer.state[trainable[0]]["step"].element_size()


def test_checkpoint_bytes_are_the_file_sizes(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_bytes(b"{}" * 17)
    assert checkpoint_bytes([tmp_path / "a.bin"]) == 1000
    assert checkpoint_bytes(tmp_path / "a.bin") == 1000
    assert checkpoint_bytes(tmp_path) == 1034  # a folder: every file inside
    with pytest.raises(FileNotFoundError, match="save_checkpoint"):
        checkpoint_bytes([tmp_path / "missing.safetensors"])


def test_memory_tracker_sees_a_large_allocation():
    assert peak_memory_mb() > 10
    with PeakMemory() as mem:
        big = torch.ones(32 * 2**20)  # 128 MB of fp32, touched
    assert mem.kind == "cpu-rss" and mem.increase_mb > 100
    del big


def test_memory_tracker_keeps_the_peak_of_a_freed_allocation():
    with PeakMemory() as mem:
        big = torch.ones(32 * 2**20)  # 128 MB
        time.sleep(0.2)  # the sampler runs every 5 ms
        del big
        during = mem.peak_mb
    assert mem.increase_mb > 100 and mem.peak_mb == during  # frozen after the block


def test_older_objects_are_set_aside_for_the_block_and_then_returned():
    """Inside the block a collection walks only new objects (garbage made there is still freed); objects frozen
    by someone else are left frozen, and a nested block does not unfreeze what its outer block set aside."""
    import gc
    import weakref

    class Node:
        pass

    frozen_by_conftest = gc.get_freeze_count() > 0  # the test run sets its imports aside (conftest.py)
    gc.unfreeze()
    try:
        with older_objects_set_aside():
            set_aside = gc.get_freeze_count()
            assert set_aside > 1000  # every object the test run holds
            node = Node()
            node.self = node  # a reference cycle: only the collector frees it
            alive = weakref.ref(node)
            del node
            with older_objects_set_aside():
                assert gc.get_freeze_count() == set_aside
            assert gc.get_freeze_count() == set_aside
            gc.collect()
            assert alive() is None
        assert gc.get_freeze_count() == 0
        gc.freeze()  # someone else's freeze (a learner's, the test run's)
        frozen = gc.get_freeze_count()
        with older_objects_set_aside():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        if frozen_by_conftest:
            gc.freeze()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator behaviour")
def test_a_second_block_sees_its_own_memory_not_the_first_blocks_leftovers():
    warm = torch.ones(2**20)  # freeing a 4 MB block raises glibc's mmap threshold: smaller ones use the heap
    del warm
    with PeakMemory() as first:
        chunks = [torch.ones(2**17) for _ in range(400)]  # 400 x 512 KB = 200 MB on the heap
        kept = chunks[::20]  # a few stay alive, so the heap cannot shrink past them
        del chunks
    with PeakMemory() as second:
        chunks = [torch.ones(2**17) for _ in range(200)]  # 100 MB: without malloc_trim this would reuse
        del chunks  # the first block's freed (still resident) pages and show about +0 MB
    assert first.increase_mb > 150 and second.increase_mb > 75
    del kept


def test_step_time_summary():
    timing = summarize_step_times([9.0, 1.0, 2.0, 3.0], tokens=[100, 100, 100, 100], warmup=1)
    assert timing.median_s == 2.0 and timing.steps_timed == 3 and timing.tokens_per_s == 50.0
    assert summarize_step_times([5.0], warmup=2).median_s == 5.0  # keeps at least one step
    calls = []
    timing = time_steps(lambda: calls.append(1), steps=4, warmup=3, tokens_per_step=10)
    assert len(calls) == 7 and timing.steps_timed == 4 and timing.median_s >= 0


def test_energy_from_cpu_time_states_its_assumption():
    with EnergyMeter("cpu-time") as meter:
        sum(i * i for i in range(200_000))
    e = meter.estimate
    assert e.method == "cpu-time" and e.cpu_seconds > 0
    assert e.kwh == pytest.approx(e.cpu_seconds * ASSUMED_WATTS_PER_CORE / 3.6e6)
    assert f"{ASSUMED_WATTS_PER_CORE:g} W" in e.details


def test_energy_falls_back_when_codecarbon_is_missing(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "codecarbon", None)  # import now fails
    with EnergyMeter() as meter:
        pass
    assert meter.estimate.method == "cpu-time" and "codecarbon unavailable" in meter.estimate.details
    with pytest.raises(RuntimeError, match="tutorlib\\[energy\\]"):
        EnergyMeter("codecarbon").start()


def test_codecarbon_estimate_is_quiet_and_leaves_no_files(tmp_path, monkeypatch, capfd):
    pytest.importorskip("codecarbon")  # an optional extra; the fallback is tested above
    monkeypatch.chdir(tmp_path)
    with EnergyMeter("codecarbon") as meter:
        busy_until = time.process_time() + 0.5  # half a CPU-second, so its CPU sampler sees a load
        while time.process_time() < busy_until:
            pass
    e = meter.estimate
    assert e.method == "codecarbon" and e.kwh > 0 and e.cpu_power_w > 0 and "not a meter" in e.details
    assert list(tmp_path.iterdir()) == []  # no emissions.csv
    out = capfd.readouterr()
    assert "codecarbon" not in out.out + out.err


def test_run_cost_bundles_a_training_run(tmp_path):
    model, tok = half_frozen_model()
    batch = dict(tok(["good", "bad film"], return_tensors="pt", padding=True), labels=torch.tensor([1, 0]))
    history = train(model, [batch], TrainConfig(steps=4, device="cpu"), progress=False)
    path = tmp_path / "head.pt"
    torch.save(model.head.state_dict(), path)
    cost = run_cost(history, model, [path], name="head+encoder")
    trainable = count_parameters(model).trainable
    assert cost.trainable_params == trainable and cost.optimizer_state_bytes == 8 * trainable
    assert cost.checkpoint_bytes == path.stat().st_size and cost.steps == 4
    assert cost.peak_memory_mb >= cost.peak_memory_increase_mb >= 0 and cost.memory_kind == "cpu-rss"
    assert cost.median_step_seconds > 0 and cost.tokens_per_second > 0
    assert cost.energy_kwh is None and cost.energy_method is None  # not asked for
    assert set(cost.to_dict()) >= {"median_step_seconds", "energy_method", "checkpoint_bytes"}
