"""Two processes train like one: 2 CPU processes (``torchrun --nproc_per_node 2``, gloo) with a global batch
of B rows give the same prefix, and the same full fine-tuning step, as one process with batch B.

The same file is the worker: ``torchrun ... tests/test_distributed.py OUT COMPARE_OUT`` runs ``main`` in each
process (Accelerate inside ``train`` joins them): process 0 saves what was trained to OUT for the tests to
compare, then both run ``python -m tutorlib compare ... --out COMPARE_OUT`` as torchrun would. One launch for
every test here: starting two processes that import torch costs more than most of what they then do.
(``accelerate launch`` starts GPU processes the same way; for several CPU processes it wants MPI.)

Tolerance: 2 processes average two half-batch gradients (each the mean over its 2 rows) where 1 process
takes the mean over 4 rows: equal in exact arithmetic when every row has the same number of targets (as
here: equal-length rows, no padding), different in float rounding only (about 1e-7 relative), which Adam
can magnify early on for near-zero gradients. We ask for agreement within 1e-5 absolute + 1e-4 relative.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

ROWS, LENGTH, PROCESSES = 4, 8, 2  # global batch B = 4 rows of 8 tokens, shared by 2 processes


def without_dropout(model: nn.Module) -> nn.Module:
    """Dropout draws different random numbers in 2 processes than in 1: switch it off to compare."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def global_batches(vocab: int, kind: str, count: int = 2) -> list[dict]:
    """``count`` global batches of (ROWS, LENGTH) random ids, every row real (no padding)."""
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(count):
        ids = torch.randint(5, vocab, (ROWS, LENGTH), generator=g)  # (B, T)
        labels = ids.clone() if kind == "lm" else torch.randint(0, 2, (ROWS,), generator=g)  # (B, T) or (B,)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def train_prefix():
    """Prefix tuning of tiny-gpt2, 5 steps -> (the trained model, its trainable tensors by name)."""
    from tutorlib.loading.models import load_model
    from tutorlib.methods.prefix.model import attach_prefix
    from tutorlib.training.loop import TrainConfig, train

    model, _ = load_model("tiny-gpt2")
    tuned = without_dropout(attach_prefix(model, 4, seed=0))
    batches = global_batches(model.config.vocab_size, "lm")
    history = train(tuned, batches, TrainConfig(steps=5, lr=1e-2, warmup=0.2, device="cpu"), progress=False)
    trained = {name: p.detach().clone() for name, p in tuned.named_parameters() if p.requires_grad}
    return tuned, trained, history


def train_full_step():
    """One full fine-tuning step of tiny-bert (a classifier) -> every weight after it."""
    from tutorlib.loading.models import load_model
    from tutorlib.methods.full import prepare_full_finetuning
    from tutorlib.training.loop import TrainConfig, train

    model, _ = load_model("tiny-bert", head="classification")
    tuned = prepare_full_finetuning(without_dropout(model), model_name="tiny-bert")
    batches = global_batches(model.encoder.config.vocab_size, "cls", count=1)
    history = train(tuned, batches, TrainConfig(steps=1, lr=1e-3, warmup=0, device="cpu"), progress=False)
    return {name: p.detach().clone() for name, p in tuned.state_dict().items()}, history


COMPARE_ARGS = ["compare", "--task", "sentiment", "--model", "tiny-bert", "--fast", "--steps", "4",
                "--test-items", "21"]


def run_compare_as_module(out: str) -> None:
    """``python -m tutorlib compare COMPARE_ARGS --out OUT`` in this process, as torchrun's ``-m`` would run it."""
    import runpy

    argv = sys.argv
    sys.argv = ["tutorlib", *COMPARE_ARGS, "--out", out]
    try:
        runpy.run_module("tutorlib", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        assert exit.code in (0, None), f"tutorlib compare exited with {exit.code}"
    finally:
        sys.argv = argv


def main(out: str, compare_out: str) -> None:
    """One process of the 2-process run: train, check what DDP synchronises, save (process 0), then compare."""
    from accelerate import Accelerator
    from datasets import Dataset

    from tutorlib.loading.models import load_model
    from tutorlib.methods.prefix.model import PrefixTunedModel, attach_prefix
    from tutorlib.methods.prefix.serving import PrefixBank
    from tutorlib.training.distributed import gather_in_order, is_main_process, process_count
    from tutorlib.training.loop import TrainConfig, train

    assert process_count() == PROCESSES
    tuned, prefix, prefix_history = train_prefix()
    assert type(tuned) is PrefixTunedModel  # the DDP wrapper is gone: the model can generate and serve
    ids = global_batches(tuned.model.config.vocab_size, "lm")[0]["input_ids"][:2, :3]
    generated = tuned.generate(ids, max_new_tokens=2, do_sample=False)
    bank = PrefixBank(tuned)
    bank.add("trained", tuned)
    served = bank(["trained", "trained"], input_ids=ids).logits
    full, full_history = train_full_step()

    # What DDP synchronises: exactly the prefix tensors (the frozen model is not in its buckets).
    model, _ = load_model("tiny-gpt2")
    fresh = attach_prefix(model, 4, seed=0)
    ddp = Accelerator(cpu=True).prepare(fresh)
    synchronised = {id(p) for p in ddp._build_params_for_reducer()[0]}  # (parameters, sparse flags)
    names = sorted(name for name, p in fresh.named_parameters() if id(p) in synchronised)
    assert names == sorted(name for name, p in fresh.named_parameters() if p.requires_grad), names
    assert type(ddp).__name__ == "DistributedDataParallel" and not ddp.find_unused_parameters

    # A global batch of 1 row cannot give both processes a row: it is skipped, with a warning.
    model, _ = load_model("tiny-gpt2")
    small = global_batches(model.config.vocab_size, "lm", count=1)
    one_row = {k: v[:1] for k, v in small[0].items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skipped = train(model, [small[0], one_row], TrainConfig(steps=2, device="cpu"), progress=False)
    warned = any("cannot give each of the 2 processes a row" in str(w.message) for w in caught)

    # Evaluation: each process scores its slice; gathered in dataset order on every process.
    gathered = gather_in_order(lambda rows: [x * 10 for x in rows["x"]], Dataset.from_dict({"x": list(range(5))}))
    assert gathered == [0, 10, 20, 30, 40], gathered
    if is_main_process():
        torch.save({"prefix": prefix, "prefix_loss": prefix_history.loss, "tokens": prefix_history.tokens,
                    "processes": prefix_history.processes, "generated": generated, "served": served,
                    "full": full, "full_loss": full_history.loss, "ddp_names": names,
                    "skipped_steps": len(skipped.loss), "warned": warned}, out)
    run_compare_as_module(compare_out)


def launch(out: Path, compare_out: Path) -> subprocess.CompletedProcess:
    with socket.socket() as s:  # a free port for the processes to meet on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(PROCESSES),
               "--master_addr", "127.0.0.1", "--master_port", str(port), __file__, str(out), str(compare_out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "TUTORLIB_DEBUG": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=compare_out.parent)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "trained.pt"
    compare_out = tmp_path_factory.mktemp("compare") / "two"
    done = launch(out, compare_out)
    assert done.returncode == 0, f"the 2-process run failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return {**torch.load(out), "stdout": done.stdout, "compare_out": compare_out}


@pytest.fixture(scope="module")
def one_process():
    """The same prefix training in this one process: (model, trained tensors, history)."""
    return train_prefix()


def test_two_processes_train_the_same_prefix_as_one(two_processes, one_process):
    tuned, prefix, history = one_process
    assert two_processes["processes"] == 2 and history.processes == 1
    assert sorted(two_processes["prefix"]) == sorted(prefix)
    for name, tensor in prefix.items():
        torch.testing.assert_close(two_processes["prefix"][name], tensor, atol=1e-5, rtol=1e-4)
    assert two_processes["prefix_loss"] == pytest.approx(history.loss, rel=1e-5)  # the mean over both processes
    assert two_processes["tokens"] == history.tokens  # the global batch's tokens, counted once
    assert history.loss[-1] < history.loss[0]


def test_two_processes_make_the_same_full_fine_tuning_step(two_processes):
    full, history = train_full_step()
    for name, tensor in full.items():
        torch.testing.assert_close(two_processes["full"][name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    assert two_processes["full_loss"] == pytest.approx(history.loss, rel=1e-5)


def test_after_ddp_the_model_generates_and_serves(two_processes, one_process):
    tuned, _, _ = one_process
    ids = global_batches(tuned.model.config.vocab_size, "lm")[0]["input_ids"][:2, :3]
    assert torch.equal(two_processes["generated"], tuned.generate(ids, max_new_tokens=2, do_sample=False))
    assert two_processes["served"].shape[:2] == (2, 3)


def test_ddp_synchronises_only_the_trainable_prefix(two_processes):
    assert two_processes["ddp_names"] and all("prefix" in name for name in two_processes["ddp_names"])


def test_a_batch_too_small_to_share_is_skipped_with_a_warning(two_processes):
    assert two_processes["warned"] and two_processes["skipped_steps"] == 2


def test_compare_on_two_processes_scores_every_item_once_and_writes_once(two_processes):
    """``torchrun --nproc_per_node 2 -m tutorlib compare ...``: one results folder, every test item scored
    once (in order), the table saying whose times it reports."""
    import json

    out = two_processes["compare_out"]
    assert two_processes["stdout"].count("Processes: 2 trained together") == 1  # one process printed the table
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["processes"] == 2
    assert [row["n"] for row in results["rows"]] == [21, 21]  # 21 items: slices of 11 and 10, gathered
    predictions = json.loads((out / "predictions.json").read_text())
    from tutorlib.loading.data import load_dataset

    expected = list(load_dataset("movie-snippets")["test"].select(range(21))["id"])
    assert [p["id"] for p in predictions["prefix"]] == expected
    assert "Processes: 2" in (out / "table.txt").read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["two"]  # no second, half-written folder


def test_a_global_batch_is_cut_into_consecutive_shares():
    from tutorlib.training.distributed import TooFewRows, share_of_batch

    batch = {"input_ids": torch.arange(10).reshape(5, 2), "labels": torch.arange(5), "scale": torch.tensor(2.0)}
    shares = [share_of_batch(batch, rank, 2) for rank in range(2)]
    assert shares[0]["labels"].tolist() == [0, 1, 2] and shares[1]["labels"].tolist() == [3, 4]
    assert torch.equal(torch.cat([s["input_ids"] for s in shares]), batch["input_ids"])
    assert all(s["scale"] is batch["scale"] for s in shares)  # a scalar is not cut
    keeper = TooFewRows(processes=8)
    with pytest.warns(UserWarning, match="5 rows cannot give each of the 8 processes a row"):
        assert not keeper.keep(batch)
    assert keeper.keep({"labels": torch.arange(8)}) and keeper.skipped == 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
