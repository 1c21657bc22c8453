"""The one training loop: it learns, trains only what requires grad, follows its schedule, is
reproducible, stops clearly on nan, evaluates when asked, and survives Ctrl-C with its history."""

import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tutorlib.loading.models import load_model
from tutorlib.training.loop import History, TrainConfig, TrainingDiverged, train

SENTENCES = ["the film was a quiet delight", "a dull, overlong mess", "sharp, funny and warm", "i wanted more"]


def lm_batch(tok, texts=SENTENCES):
    """input_ids, attention_mask, labels: (B, T); padding is ignored in the loss (-100)."""
    batch = dict(tok(texts, return_tensors="pt", padding=True))
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    return {**batch, "labels": labels}


def cls_batch(tok):
    batch = dict(tok(SENTENCES, return_tensors="pt", padding=True))
    return {**batch, "labels": torch.tensor([1, 0, 1, 0])}  # (B,)


def quiet(**kwargs):
    return TrainConfig(**{"device": "cpu", **kwargs})


def test_loss_falls_when_memorising_one_batch():
    model, tok = load_model("tiny-gpt2")
    history = train(model, [lm_batch(tok)], quiet(steps=30, lr=1e-2, warmup=0.1), progress=False)
    assert len(history.loss) == 30 and history.step == list(range(1, 31))
    assert history.loss[-1] < 0.3 * history.loss[0]
    assert not model.training  # load_model gives eval mode; train() puts it back
    assert all(p.grad is None for p in model.parameters())


def test_only_trainable_parameters_change():
    model, tok = load_model("tiny-bert")  # SequenceClassifier: train the head only
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = train(model, [cls_batch(tok)], quiet(steps=5, lr=1e-2, warmup=0), progress=False)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[name]), f"{name} should have been trained"
        else:
            assert torch.equal(p, before[name]), f"{name} is frozen but changed"
    assert history.trainable_params == sum(p.numel() for p in model.head.parameters())


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_learning_rate_warms_up_then_decays_to_zero(schedule):
    model, tok = load_model("tiny-gpt2")
    config = quiet(steps=20, lr=1e-3, warmup=0.25, schedule=schedule)
    lr = train(model, [lm_batch(tok)], config, progress=False).lr
    assert config.warmup_steps == 5
    assert lr[0] == 0.0 and all(a < b for a, b in zip(lr[:5], lr[1:6]))  # rising
    assert lr.index(max(lr)) == 5 and max(lr) == pytest.approx(1e-3)      # peak right after warm-up
    assert all(a > b for a, b in zip(lr[5:], lr[6:]))                    # then falling
    assert lr[-1] < 0.1 * 1e-3                                           # to about 0


def test_constant_schedule_without_clipping():
    model, tok = load_model("tiny-gpt2")
    config = quiet(steps=6, lr=1e-3, warmup=2, schedule="constant", max_grad_norm=None)
    history = train(model, [lm_batch(tok)], config, progress=False)
    assert history.lr == pytest.approx([0.0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3])
    assert max(history.grad_norm) > 1.0  # the norm before clipping; nothing clipped it anyway


def test_warmup_given_in_steps():
    assert TrainConfig(steps=50, warmup=5).warmup_steps == 5
    assert TrainConfig(steps=50, warmup=0.1).warmup_steps == 5
    with pytest.raises(ValueError, match="whole number"):
        TrainConfig(warmup=2.5)


def test_warns_about_trainable_parameters_without_gradient():
    model, tok = load_model("tiny-bert")
    model.spare = torch.nn.Linear(64, 64)  # trainable, but forward never uses it
    with pytest.warns(UserWarning, match=r"2 trainable tensors \(4,160 parameters, e.g. spare"):
        train(model, [cls_batch(tok)], quiet(steps=1), progress=False)


def test_same_seed_same_history_other_seed_differs():
    def run(seed):
        model, tok = load_model("tiny-gpt2")  # dropout 0.1 is on in train mode: the seed matters
        return train(model, [lm_batch(tok)], quiet(steps=6, seed=seed), progress=False).loss

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_nan_loss_stops_with_advice():
    model, tok = load_model("tiny-gpt2")
    with pytest.raises(TrainingDiverged) as caught:
        train(model, [lm_batch(tok)], quiet(steps=10, lr=1e6, warmup=0), progress=False)
    err = caught.value
    assert err.step >= 2 and len(err.history.loss) == err.step - 1
    assert f"at step {err.step} of 10" in str(err) and "lower learning rate" in str(err)


def test_all_ignored_labels_are_caught_at_step_one():
    model, tok = load_model("tiny-gpt2")
    batch = lm_batch(tok)
    batch["labels"] = torch.full_like(batch["labels"], -100)  # no target at all -> mean over nothing = nan
    with pytest.raises(TrainingDiverged, match="(?s)at step 1 of .*No update.*all -100"):
        train(model, [batch], quiet(steps=3), progress=False)


class ScaledLoss(nn.Module):
    """A model whose loss is weight**2 x batch['scale']: a batch with scale=inf makes the loss inf."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.seen = []  # the weight at each forward

    def forward(self, scale):
        self.seen.append(self.weight.detach().clone())
        return SimpleNamespace(loss=(self.weight**2).sum() * scale)


def test_inf_loss_step_is_not_applied():
    model = ScaledLoss()
    batches = [{"scale": torch.tensor(1.0)}] * 2 + [{"scale": torch.tensor(float("inf"))}]
    with pytest.raises(TrainingDiverged, match="loss is inf at step 3"):
        train(model, batches, quiet(steps=5, lr=0.1, warmup=0), progress=False)
    assert torch.equal(model.weight.detach(), model.seen[2])  # the weights after step 2


def test_eval_fn_called_at_the_right_steps_in_eval_mode():
    model, tok = load_model("tiny-gpt2")
    calls = []

    def eval_fn(evaluated):
        calls.append((evaluated.training, torch.is_grad_enabled()))
        return {"calls": len(calls)}

    model.train()
    history = train(model, [lm_batch(tok)], quiet(steps=10, eval_every=3, eval_at_start=True),
                    eval_fn=eval_fn, progress=False)
    assert [e["step"] for e in history.evals] == [0, 3, 6, 9, 10]
    assert [e["calls"] for e in history.evals] == [1, 2, 3, 4, 5]
    assert calls == [(False, False)] * 5
    assert model.training  # it came in train mode, it leaves in train mode


def test_keyboard_interrupt_returns_history_so_far(capsys):
    model, tok = load_model("tiny-gpt2")
    batch = lm_batch(tok)

    def batches():
        for i in range(100):
            if i == 4:
                raise KeyboardInterrupt  # as if Ctrl-C hit while the 5th batch was being made
            yield batch

    history = train(model, batches(), quiet(steps=50), progress=False)
    assert history.interrupted and len(history.loss) == 4
    assert "stopped by Ctrl-C after step 4" in capsys.readouterr().err
    assert not model.training


def test_ctrl_c_finishes_the_current_step():
    model, tok = load_model("tiny-gpt2")
    batch = lm_batch(tok)

    def batches():
        for i in range(100):
            if i == 2:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C while fetching the 3rd batch
            yield batch

    previous = signal.getsignal(signal.SIGINT)
    history = train(model, batches(), quiet(steps=50), progress=False)
    assert history.interrupted and len(history.loss) == 3  # step 3 was completed, not torn
    assert signal.getsignal(signal.SIGINT) is previous


def test_batches_from_a_dataloader_are_cycled_and_counted():
    model, tok = load_model("tiny-gpt2")
    batch = lm_batch(tok)
    rows = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    loader = torch.utils.data.DataLoader(rows, batch_size=2, shuffle=True)  # 2 batches per pass
    history = train(model, loader, quiet(steps=5), progress=False)
    assert len(history.loss) == 5
    assert sum(history.tokens) > 0 and all(t <= int(batch["attention_mask"].sum()) for t in history.tokens)


def test_learner_mistakes_get_clear_errors():
    model, tok = load_model("tiny-gpt2")
    batch = lm_batch(tok)
    with pytest.raises(TypeError, match=r"pass a list of batches"):
        train(model, batch, quiet(steps=2), progress=False)
    with pytest.raises(ValueError, match="one-pass iterator"):
        train(model, iter([batch]), quiet(steps=2), progress=False)
    with pytest.raises(ValueError, match="labels"):
        train(model, [{k: v for k, v in batch.items() if k != "labels"}], quiet(steps=1), progress=False)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, [batch], quiet(steps=1), progress=False)


def test_history_is_json_and_a_dataframe():
    model, tok = load_model("tiny-gpt2")
    history = train(model, [lm_batch(tok)], quiet(steps=4, eval_every=2), eval_fn=lambda m: {"x": 1},
                    progress=False)
    again = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again.loss == history.loss and again.evals == history.evals
    frame = history.as_dataframe()
    assert list(history.as_dataframe(evals=True)["step"]) == [2, 4]
    assert list(frame["step"]) == [1, 2, 3, 4] and (frame["peak_memory_mb"] > 0).all()
    assert history.memory_kind == "cpu-rss" and history.optimizer_state_bytes == 8 * history.trainable_params


def test_own_learning_rate_by_parameter_name():
    """prefix-mlp's MLP and its new head want rates ~100x apart: lr_by_name gives the head its own."""
    from tutorlib.methods.prefix.model import attach_prefix
    from tutorlib.training.loop import parameter_groups

    model, tok = load_model("tiny-bert", head="classification")
    tuned = attach_prefix(model, 4, reparameterise=True)
    config = quiet(steps=4, lr=1e-4, warmup=0, schedule="constant", lr_by_name={"model.head.": 1e-2})
    groups = parameter_groups(tuned, config)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    rates = {name: by_id[id(p)] for name, p in tuned.named_parameters() if p.requires_grad}
    assert rates == {name: 1e-2 if name.startswith("model.head.") else 1e-4 for name in rates}
    assert groups[0]["lr"] == 1e-4  # the rate the history records
    assert sum(len(g["params"]) for g in groups) == len(rates)  # each parameter in exactly one group
    # The head moves ~100x further than it would at the MLP's rate: train twice and compare its change.
    moved = {}
    for name, extra in (("own", {"model.head.": 1e-2}), ("shared", None)):
        model, _ = load_model("tiny-bert", head="classification")
        tuned = attach_prefix(model, 4, reparameterise=True)
        before = tuned.model.head.weight.detach().clone()
        history = train(tuned, [cls_batch(tok)], quiet(steps=3, lr=1e-4, warmup=0, schedule="constant",
                                                          lr_by_name=extra), progress=False)
        assert history.lr == [1e-4] * 3
        moved[name] = (tuned.model.head.weight.detach() - before).abs().max().item()
    assert moved["own"] > 20 * moved["shared"]


def test_own_learning_rate_mistakes_are_explained():
    model, tok = load_model("tiny-gpt2")
    with pytest.raises(ValueError, match="no trainable parameter's name starts with"):
        train(model, [lm_batch(tok)], quiet(steps=1, lr_by_name={"head.": 1e-2}), progress=False)
    with pytest.raises(ValueError, match="learning rates > 0"):
        quiet(steps=1, lr_by_name={"transformer.": 0})


def plain_reference_loop(model, batches, steps, lr, warmup_steps, seed):
    """The textbook PyTorch loop that ``train`` must equal on one CPU process: AdamW without weight decay
    (fused, as the kit's on the CPU), linear warm-up and decay, gradients clipped to norm 1.
    Returns (losses, gradient norms)."""
    from transformers import get_scheduler

    from tutorlib.training.loop import seed_everything

    seed_everything(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=warmup_steps, num_training_steps=steps)
    model.train()
    losses, norms = [], []
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        losses.append(loss.item())
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, 1.0).item())
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return losses, norms


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert-prefix"])
def test_one_cpu_process_equals_the_plain_pytorch_loop(name):
    """Accelerate adds nothing on one CPU process: the same seed gives the very same losses, gradient
    norms and weights as the plain loop (dropout on: the random numbers are drawn in the same order)."""
    from tutorlib.methods.prefix.model import attach_prefix

    def fresh():
        if name == "tiny-gpt2":
            model, tok = load_model("tiny-gpt2")
            return model, [lm_batch(tok), lm_batch(tok, SENTENCES[::-1])]
        model, tok = load_model("tiny-bert", head="classification")
        return attach_prefix(model, 4, seed=0), [cls_batch(tok)]

    ours, batches = fresh()
    # label_logits_only=False: the plain loop projects every position; projecting the labelled ones only gives
    # the same loss to float rounding, not bit for bit (tests/test_label_logits.py)
    history = train(ours, batches, quiet(steps=8, lr=1e-2, warmup=0.25, seed=3, label_logits_only=False),
                    progress=False)
    plain, batches = fresh()
    losses, norms = plain_reference_loop(plain, batches, steps=8, lr=1e-2, warmup_steps=2, seed=3)
    assert history.loss == losses and history.grad_norm == norms
    assert history.loss[-1] < history.loss[0]  # it did learn: the equality is not of two no-ops
    for (key, a), (_, b) in zip(ours.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(a, b), key


def test_gradient_accumulation_equals_one_big_batch():
    """accumulate=2 over two halves of a batch updates like one step on the whole batch (no dropout,
    equal-length rows so both halves' means weigh the same)."""
    def fresh():
        model, _ = load_model("tiny-bert", head="classification")
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        return model

    whole_model = fresh()
    ids = torch.randint(5, 100, (4, 8), generator=torch.Generator().manual_seed(0))  # (B, T), no padding
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([1, 0, 1, 0])}
    halves = [{k: v[:2] for k, v in batch.items()}, {k: v[2:] for k, v in batch.items()}]
    whole = train(whole_model, [batch], quiet(steps=3, lr=1e-3, warmup=0), progress=False)
    split_model = fresh()
    split = train(split_model, halves, quiet(steps=3, lr=1e-3, warmup=0, accumulate=2), progress=False)
    assert split.loss == pytest.approx(whole.loss, rel=1e-5) and split.tokens == whole.tokens
    for a, b in zip(whole_model.parameters(), split_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bf16_mixed_precision_trains_and_leaves_an_fp32_model():
    model, tok = load_model("tiny-gpt2")
    history = train(model, [lm_batch(tok)], quiet(steps=20, lr=1e-2, mixed_precision="bf16"), progress=False)
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32
    logits = model(**dict(tok(["a test"], return_tensors="pt"))).logits
    assert logits.dtype == torch.float32  # autocast is gone after training: plain fp32 forward again
    from accelerate.state import AcceleratorState

    assert not AcceleratorState._shared_state  # cleared: accelerate.notebook_launcher may still start


def test_precision_and_accumulation_mistakes_are_explained():
    with pytest.raises(ValueError, match="choose one of no, bf16, fp16"):
        TrainConfig(mixed_precision="fp32")
    with pytest.raises(ValueError, match="whole number of batches per update"):
        TrainConfig(accumulate=0)
    model, tok = load_model("tiny-gpt2")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        train(model, [lm_batch(tok)], quiet(steps=1, mixed_precision="fp16"), progress=False)


def test_a_callback_sees_every_step_and_can_stop_training():
    from tutorlib.training.callbacks import TrainerCallback

    class StopAtThree(TrainerCallback):
        def __init__(self):
            self.seen, self.ended = [], False

        def on_step_end(self, run, values):
            self.seen.append((values["step"], values["peak_memory_mb"] > 0))  # the memory callback ran first
            run.stop_requested = values["step"] == 3

        def on_train_end(self, run):
            self.ended = True

    model, tok = load_model("tiny-gpt2")
    callback = StopAtThree()
    history = train(model, [lm_batch(tok)], quiet(steps=10), progress=False, callbacks=[callback])
    assert callback.seen == [(1, True), (2, True), (3, True)] and callback.ended
    assert history.step == [1, 2, 3] and not history.interrupted  # stopped on purpose, not by Ctrl-C
    with pytest.raises(ValueError, match="History.record needs exactly"):
        history.record(step=4, loss=1.0)  # a step with missing numbers would make the lists unequal
