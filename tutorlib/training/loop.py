"""One training loop for every method: full fine-tuning and prefix tuning train the same way.

    >>> from tutorlib.loading.models import load_model
    >>> model, tok = load_model("tiny-gpt2")
    >>> batch = dict(tok(["a tiny batch"] * 2, return_tensors="pt"))  # input_ids, attention_mask: (B, T)
    >>> batch["labels"] = batch["input_ids"].clone()                   # (B, T) next-token targets
    >>> history = train(model, [batch], TrainConfig(steps=3), progress=False)
    >>> len(history.loss)
    3

The model to train is any ``nn.Module`` whose ``forward(**batch)`` returns something with ``.loss`` (a plain
model, or one a method wrapped); the loop trains exactly its parameters with ``requires_grad=True``: AdamW,
warm-up then decay to 0, gradient clipping.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn
from transformers import get_scheduler

from tutorlib.training.callbacks import (
    Callbacks,
    StepClock,
    TrainerCallback,
    standard_callbacks,
)
from tutorlib.training.distributed import (
    MIXED_PRECISION,
    TooFewRows,
    make_accelerator,
    process_count,
    process_index,
    release_accelerator,
    share_of_batch,
)
from tutorlib.training.label_logits import projects_label_positions_only, with_label_positions
from tutorlib.training.measure import EnergyEstimate
from tutorlib.training.parameters import count_parameters

SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}  # ours -> transformers'


def _option(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """How to train (not the batch size: batches come from the caller). Each field has ``metadata["help"]``."""

    steps: int = _option(100, "optimizer updates to make; the batches are cycled until then")
    lr: float = _option(1e-3, "peak learning rate, reached at the end of warm-up")
    lr_by_name: dict[str, float] | None = _option(
        None, "own peak learning rates for some parameters, by name prefix, e.g. {'model.head.': 1e-2}; "
              "the longest matching prefix wins, the other parameters use `lr`")
    warmup: float = _option(0.1, "warm-up (lr rising from 0): a fraction of `steps` if below 1, else a number of steps")
    schedule: str = _option("linear", "after warm-up: 'linear' or 'cosine' decay to 0, or 'constant'")
    weight_decay: float = _option(0.0, "AdamW weight decay, on matrices only (not on biases or norms)")
    betas: tuple[float, float] = _option((0.9, 0.999), "AdamW's moment decay rates")
    max_grad_norm: float | None = _option(1.0, "clip the gradients' global L2 norm to this; None: no clipping")
    eval_every: int = _option(0, "call eval_fn every this many steps and after the last; 0: after the last only")
    eval_at_start: bool = _option(False, "also call eval_fn before the first update (recorded as step 0)")
    seed: int = _option(0, "seeds torch, random and numpy when train() starts")
    device: str = _option("auto", "'auto' (TUTORLIB_DEVICE if set, else cuda if available, else cpu), "
                                  "'cpu', 'cuda', 'cuda:1', ...")
    log_every: int = _option(1, "refresh the progress bar's loss and lr every this many steps")
    measure_energy: bool = _option(False, "estimate energy with tutorlib.training.measure.EnergyMeter "
                                          "(codecarbon if installed)")
    collect_garbage: bool = _option(
        False, "one full garbage collection before training (outside the timed steps), so that the memory "
               "baseline holds live objects only: for memory compared side by side (a comparison sets it); "
               "about 1 s in a process holding half a million Python objects")
    mixed_precision: str | None = _option(
        None, "'no' (fp32), 'bf16' or 'fp16' (CUDA only): forward and backward in 16 bits under autocast, the "
              "weights and AdamW's state stay fp32; None: what `accelerate launch --mixed_precision` says, else 'no'")
    label_logits_only: bool = _option(
        True, "causal language models: project onto the vocabulary only the positions that have a label (the "
              "same loss and gradients, less work where most positions are a prompt; see "
              "tutorlib.training.label_logits); False: every position")
    accumulate: int | None = _option(
        None, "batches per update (gradient accumulation): the effective batch is this many batches, `steps` still "
              "counts updates; None: `accelerate launch --gradient_accumulation_steps`, else 1")

    def __post_init__(self):
        if self.steps < 1 or self.lr <= 0 or self.warmup < 0:
            raise ValueError("TrainConfig needs steps >= 1, lr > 0, warmup >= 0; "
                             f"got {self.steps}, {self.lr}, {self.warmup}.")
        if self.warmup >= 1 and self.warmup != int(self.warmup):
            raise ValueError(f"warmup={self.warmup}: use a fraction below 1 (e.g. 0.1) or a whole number of steps.")
        for name, rate in (self.lr_by_name or {}).items():
            if not isinstance(name, str) or not isinstance(rate, (int, float)) or rate <= 0:
                raise ValueError(f"lr_by_name maps parameter-name prefixes to learning rates > 0, e.g. "
                                 f"{{'model.head.': 1e-2}}; got {name!r}: {rate!r}.")
        if self.accumulate is not None and (isinstance(self.accumulate, bool) or not isinstance(self.accumulate, int)
                                            or self.accumulate < 1):
            raise ValueError(f"accumulate={self.accumulate!r}: give a whole number of batches per update, >= 1.")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision={self.mixed_precision!r}: choose one of {', '.join(MIXED_PRECISION)}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")

    @property
    def precision(self) -> str:
        """The mixed precision used: ``mixed_precision``, else the launcher's (``ACCELERATE_MIXED_PRECISION``),
        else 'no'."""
        return self.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")

    @property
    def batches_per_update(self) -> int:
        """``accumulate``, else the launcher's ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``, else 1."""
        return self.accumulate or int(os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "1"))

    def evaluates_after(self, step: int) -> bool:
        """Whether ``eval_fn`` runs after update ``step``: every ``eval_every`` steps, and after the last."""
        return step == self.steps or bool(self.eval_every) and step % self.eval_every == 0

    @property
    def warmup_steps(self) -> int:
        """Warm-up length in steps (a fraction of ``steps`` is rounded)."""
        return min(self.steps, round(self.warmup * self.steps) if self.warmup < 1 else int(self.warmup))


@dataclass(repr=False)
class History:
    """What happened in a run. Per step, lists of equal length (entry i is update ``step[i]``, from 1):
    ``loss`` (the batch's, before the update), ``lr`` (used by the update), ``seconds`` (wall time: batch
    to device, forward, backward, update; no evaluation), ``tokens`` (attention_mask.sum()), ``grad_norm``
    (global L2, before clipping), ``peak_memory_mb`` (peak so far in this run, MiB, see ``memory_kind``).
    ``evals``: one dict ``{"step": k, metric: value}`` per evaluation. ``to_dict()`` is JSON-able."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    peak_memory_mb: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"
    memory_kind: str = ""  # "cpu-rss" or "cuda-allocated": see tutorlib.training.measure.PeakMemory
    memory_baseline_mb: float = 0.0  # memory in use when training started (MiB)
    trainable_params: int = 0
    optimizer_state_bytes: int = 0
    total_seconds: float = 0.0  # the whole call: set-up and evaluation included
    interrupted: bool = False  # stopped early by Ctrl-C
    processes: int = 1  # processes that trained together; times, memory and energy are this process's own
    mixed_precision: str = "no"  # "no" (fp32), "bf16" or "fp16"
    batches_per_update: int = 1  # gradient accumulation: batches (each shared by the processes) per update
    energy: EnergyEstimate | None = None  # with TrainConfig(measure_energy=True)
    config: dict = field(default_factory=dict)

    STEP_FIELDS = ("step", "loss", "lr", "seconds", "tokens", "grad_norm", "peak_memory_mb")

    def record(self, **values) -> None:
        """Append one update's numbers, one keyword per per-step list (all seven, so the lists stay equal)."""
        if set(values) != set(self.STEP_FIELDS):
            raise ValueError(f"History.record needs exactly {', '.join(self.STEP_FIELDS)}; got {', '.join(values)}.")
        for name, value in values.items():
            getattr(self, name).append(value)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> History:
        data = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        if isinstance(data.get("energy"), Mapping):
            data["energy"] = EnergyEstimate(**data["energy"])
        return cls(**data)

    def as_dataframe(self, evals: bool = False):
        """A pandas DataFrame: one row per step, or per evaluation with ``evals=True``."""
        import pandas as pd

        return pd.DataFrame(self.evals if evals else {name: getattr(self, name) for name in self.STEP_FIELDS})

    def __repr__(self) -> str:
        if not self.loss:
            return "History(no steps)"
        return (f"History({len(self.loss)} steps{' (interrupted)' if self.interrupted else ''}, loss "
                f"{self.loss[0]:.4g} -> {self.loss[-1]:.4g}, {sum(self.seconds):.1f} s in steps, peak "
                f"{self.peak_memory_mb[-1]:.0f} MiB {self.memory_kind}, {len(self.evals)} evals)")


class TrainingDiverged(RuntimeError):
    """The loss (or the gradient) stopped being a finite number; ``.step``, and ``.history`` up to before it."""

    def __init__(self, message: str, step: int, history: History):
        super().__init__(message)
        self.step, self.history = step, history


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> ``TUTORLIB_DEVICE`` if set, else cuda if a GPU is visible, else cpu; anything else
    goes to ``torch.device``."""
    if device == "auto":
        device = os.environ.get("TUTORLIB_DEVICE", "").strip() or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU here; use device='auto' or 'cpu' "
                         "(and check TUTORLIB_DEVICE).")
    return torch.device(device)


def train(model: nn.Module, train_batches: Iterable[Mapping[str, torch.Tensor]], config: TrainConfig | None = None,
          *, eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None, progress: bool = True,
          callbacks: Sequence[TrainerCallback] = ()) -> History:
    """Train the ``requires_grad`` parameters of ``model`` for ``config.steps`` updates; return the History.

    ``train_batches``: a list or DataLoader (read again and again) of dicts of tensors, e.g. input_ids,
    attention_mask, labels (B, T). ``eval_fn(model) -> {"metric": value}`` runs in eval mode without
    gradients. Ctrl-C stops after the current step (twice: at once) and returns the history so far with
    ``interrupted=True``. A nan/inf loss or gradient raises :class:`TrainingDiverged` before it changes a
    weight. The model stays on the device, in the train/eval mode it came in, without gradients.
    ``callbacks``: your own :class:`~tutorlib.training.callbacks.TrainerCallback` s, called after the
    standard ones (energy, memory, progress bar, Ctrl-C).

    Hugging Face Accelerate does the device work: mixed precision (``config.mixed_precision``), gradient
    accumulation (``config.accumulate`` batches per update) and, when several processes were launched
    (``accelerate launch``, ``torchrun``), DistributedDataParallel: each process takes its share of every
    batch (see :mod:`tutorlib.training.distributed`), so N processes take the same steps as one. The
    model given is the one trained (the DDP wrapper is dropped at the end), ready for generation or saving.
    """
    config = config or TrainConfig()
    run = TrainingRun.start(model, config)  # device, Accelerate, AdamW and its schedule, an empty History
    batches = run.batches_from(train_batches)  # cycled; with N processes, batches too small to share skipped
    history, optimizer = run.history, run.optimizer
    with Callbacks(run, [*standard_callbacks(config, progress, run.rank), *callbacks]) as hooks:
        if eval_fn is not None and config.eval_at_start:
            _evaluate(run, eval_fn, 0, hooks)
        run.prepared_model.train()
        for step in range(1, config.steps + 1):
            update_batches = [next(batches) for _ in range(config.batches_per_update)]
            with StepClock(run.device) as clock:
                lr = optimizer.param_groups[0]["lr"]
                loss, tokens = _forward_backward(run, update_batches)
                _stop_if_not_finite(loss, "loss", step, lr, config, history)
                if step == 1:
                    _check_every_trainable_gets_a_gradient(model, run.processes)
                grad_norm = run.clip_gradients()
                _stop_if_not_finite(grad_norm, "gradient norm", step, lr, config, history)
                optimizer.step()
                run.step_schedule()
                optimizer.zero_grad(set_to_none=True)
            values = {"step": step, "loss": loss, "lr": lr, "seconds": clock.seconds, "tokens": tokens,
                      "grad_norm": grad_norm}
            hooks.on_step_end(values)  # the memory callback adds peak_memory_mb; the progress bar moves
            history.record(**values)
            if eval_fn is not None and config.evaluates_after(step):
                _evaluate(run, eval_fn, step, hooks)
            if run.stop_requested:  # Ctrl-C (or a callback): stop after this step
                break
    return history


@dataclass
class TrainingRun:
    """Everything one ``train()`` call sets up, for the loop and its callbacks: the ``model`` being trained and
    ``prepared_model``, the one that runs the forward pass (the same module, or DDP around it with several
    processes), ``optimizer`` (Accelerate's wrapper around
    ``adamw``) of the trainable ``params``, the learning-rate ``scheduler``, the ``accelerator``, ``device``,
    ``processes`` and this process's ``rank``, the ``config`` and the ``history`` being filled."""

    model: nn.Module
    prepared_model: nn.Module
    params: list[nn.Parameter]
    adamw: torch.optim.Optimizer
    optimizer: torch.optim.Optimizer
    scheduler: object
    accelerator: object
    device: torch.device
    processes: int
    rank: int
    config: TrainConfig
    history: History
    was_training: bool
    started: float
    label_logits_only: bool = False  # add logits_to_keep and shift_labels to each batch (label_logits.py)
    stop_requested: bool = False

    @classmethod
    def start(cls, model: nn.Module, config: TrainConfig) -> TrainingRun:
        """Seed, place the model, build AdamW (:func:`parameter_groups`) and its schedule, let Accelerate
        prepare both (mixed precision, DDP), and start an empty History."""
        started, processes = time.perf_counter(), process_count()
        device = resolve_device(config.device)
        accelerator = make_accelerator(config.precision, device)
        device = device if processes == 1 else accelerator.device  # launched: Accelerate's one device per process
        seed_everything(config.seed)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The model has no trainable parameters (none has requires_grad=True): nothing to train.")
        # On the CPU, fused=True: one pass over each tensor instead of one per operation (AdamW's update of
        # SmolLM2's 135M weights: 0.145 s instead of 0.463 s at one thread, bench/RESULTS.md section 7). The
        # same update to float rounding.
        adamw = torch.optim.AdamW(parameter_groups(model, config), lr=config.lr, betas=config.betas,
                                  fused=True if device.type == "cpu" else None)
        # The schedule is stepped by hand, once per update: Accelerate's wrapper would step it once per process.
        scheduler = get_scheduler(SCHEDULES[config.schedule], adamw, num_warmup_steps=config.warmup_steps,
                                  num_training_steps=config.steps)
        prepared_model, optimizer = accelerator.prepare(model, adamw)  # several processes: DDP(model)
        history = History(device=str(device), trainable_params=count_parameters(model).trainable,
                          config=asdict(config), processes=processes, mixed_precision=config.precision,
                          batches_per_update=config.batches_per_update)
        return cls(model, prepared_model, params, adamw, optimizer, scheduler, accelerator, device, processes,
                   process_index(), config, history, model.training, started,
                   label_logits_only=config.label_logits_only and projects_label_positions_only(model))

    def batches_from(self, train_batches: Iterable) -> Iterator:
        """The batches forever (:func:`_cycle`), without the global batches too small to give every process a row."""
        too_few_rows = TooFewRows(self.processes)
        return (batch for batch in _cycle(train_batches) if too_few_rows.keep(batch))

    def clip_gradients(self) -> float:
        """Clip the gradients' global L2 norm to ``config.max_grad_norm``; return the norm before clipping."""
        return float(self.accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm or math.inf))

    def step_schedule(self) -> None:
        """Move the learning rate on, unless fp16's loss scaling skipped this update (overflowing gradients)."""
        if not self.accelerator.optimizer_step_was_skipped:
            self.scheduler.step()

    def finish(self) -> None:
        """Leave the model as ``train()`` promises: no gradients, plain forward, its train/eval mode, and
        AdamW's moments freed now (not whenever Python's garbage collector next runs)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.adamw.state.clear()  # the moments: 2 x 4 bytes per trainable parameter
        self.accelerator.unwrap_model(self.prepared_model, keep_fp32_wrapper=False)  # mixed precision: plain forward
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # give the cached blocks back, for the next run's "does it fit" check
        release_accelerator()
        self.model.train(self.was_training)
        self.history.total_seconds = time.perf_counter() - self.started


def _forward_backward(run: TrainingRun, batches: list[Mapping]) -> tuple[float, int]:
    """One update's gradients from ``batches`` (one, or several with gradient accumulation): this process
    runs its share of each global batch, each loss divided by ``len(batches)`` so that the gradients add up
    to the mean's. Gradients are averaged across processes only at the last batch (``no_sync`` before).
    Returns (the mean loss over the batches and the processes, the real tokens of the global batches)."""
    model, accelerator, processes = run.prepared_model, run.accelerator, run.processes
    losses, tokens, accumulate = [], 0, len(batches)
    for micro, batch in enumerate(batches):
        tokens += _count_tokens(batch)  # the global batch's: the same on every process
        share = share_of_batch(batch, run.rank, processes)
        share = {k: v.to(run.device) if torch.is_tensor(v) else v for k, v in share.items()}
        if run.label_logits_only:
            share = with_label_positions(share)  # logits at the labelled positions only: the same loss
        last = micro == accumulate - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = getattr(model(**share), "loss", None)  # a scalar tensor
            if loss is None:
                raise ValueError("model(**batch) returned no .loss: does each batch have 'labels'? "
                                 "(token ids (B, T) for a language model, class ids (B,) for a classifier)")
            losses.append(loss.detach().float())
            accelerator.backward(loss / accumulate)
    loss = torch.stack(losses).mean()
    if processes > 1:
        loss = accelerator.reduce(loss, reduction="mean")  # every process sees the same loss (and stops together)
    return loss.item(), tokens  # .item() waits for the forward pass (on a GPU too)


# ----------------------------------------------------------------------------- the loop's helpers


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW's parameter groups: one per (learning rate, weight decay). Biases and norms (1-D tensors) get no
    decay; a parameter whose name starts with a key of ``config.lr_by_name`` gets that rate (longest key
    wins). The first group always holds ``config.lr``: it is the rate the history records."""
    rates = dict(config.lr_by_name or {})
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    unmatched = [key for key in rates if not any(name.startswith(key) for name, _ in named)]
    if unmatched:
        raise ValueError(f"lr_by_name has {unmatched} but no trainable parameter's name starts with it; "
                         f"trainable names look like: {', '.join(name for name, _ in named[:4])}, ...")
    groups: dict[tuple[float, bool], list] = {(config.lr, True): [], (config.lr, False): []}
    for name, p in named:
        key = max((k for k in rates if name.startswith(k)), key=len, default=None)
        groups.setdefault((rates[key] if key else config.lr, p.ndim >= 2), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": config.weight_decay if decays else 0.0}
            for (lr, decays), ps in groups.items() if ps or lr == config.lr]


def _cycle(batches: Iterable) -> Iterator:
    """Yield batches forever, reading ``batches`` again after each pass (a shuffling DataLoader reshuffles)."""
    if isinstance(batches, Mapping):
        raise TypeError("train_batches is a single batch (a dict); pass a list of batches, e.g. [batch].")
    while True:
        count = 0
        for count, batch in enumerate(batches, start=1):
            yield batch
        if count == 0:
            raise ValueError("train_batches gave no batch: it is empty (or a generator that was already used).")
        if isinstance(batches, Iterator):  # a generator cannot be read twice
            raise ValueError(f"train_batches is a one-pass iterator (e.g. a generator) and ran out after {count} "
                             f"batches; pass a list or a DataLoader (they can be read again), or fewer steps.")


def _count_tokens(batch: Mapping) -> int:
    """Real (unpadded) tokens: the attention mask's sum, else every input id."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"Each batch must be a dict of tensors (input_ids, attention_mask, labels), got "
                        f"{type(batch).__name__}; a tokenizer's output works: dict(tok(texts, return_tensors='pt')).")
    tensor = batch.get("attention_mask", batch.get("input_ids"))
    return int(tensor.sum() if "attention_mask" in batch else tensor.numel()) if tensor is not None else 0


def _stop_if_not_finite(value: float, what: str, step: int, lr: float, config: TrainConfig, history: History):
    if math.isfinite(value):
        return
    advice = ("check the labels: class ids in [0, num_labels), token ids in [0, vocab_size) or -100 (ignored); "
              "a batch whose labels are all -100 has no target and gives a nan loss; check the inputs for nan.")
    if step == 1:  # no update has happened yet: the learning rate cannot be the cause
        where = "No update was made: the weights are as they were given."
    else:
        where = f"This step was not applied: the weights are those after step {step - 1}."
        advice = (f"a lower learning rate, e.g. TrainConfig(lr={config.lr / 10:.1e}) (10x lower), or a longer "
                  f"warm-up; keep gradient clipping on (max_grad_norm=1.0);\n  - {advice}")
    raise TrainingDiverged(f"Training diverged: the {what} is {value} at step {step} of {config.steps} "
                           f"(learning rate {lr:.2e}). {where}\nWhat to try:\n  - {advice}", step, history)


def _check_every_trainable_gets_a_gradient(model: nn.Module, processes: int) -> None:
    """Warn about trainable tensors the loss does not use; with several processes stop instead: DDP
    (without ``find_unused_parameters``, which costs a graph walk every step) would wait for their
    gradients forever at the next step."""
    unused = [(name, p.numel()) for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if not unused:
        return
    message = (f"{len(unused)} trainable tensors ({sum(n for _, n in unused):,} parameters, e.g. {unused[0][0]}) "
               f"got no gradient: the loss does not use them, so they are not trained and get no optimizer "
               f"state. Freeze them (requires_grad_(False)) so that they are not counted as trainable.")
    if processes > 1:
        raise ValueError(message + f" With {processes} processes this is an error: DistributedDataParallel "
                                   f"would wait for their gradients at the next step.")
    warnings.warn(message)


def _evaluate(run: TrainingRun, eval_fn: Callable, step: int, hooks: Callbacks) -> None:
    """Run ``eval_fn`` in eval mode without gradients, record its metrics, go back to train mode."""
    run.model.eval()
    try:
        with torch.no_grad():
            metrics = eval_fn(run.model)
    finally:
        run.model.train()
    if not isinstance(metrics, Mapping):
        raise TypeError(f"eval_fn must return a dict such as {{'accuracy': 0.8}}, got {type(metrics).__name__}.")
    run.history.evals.append({"step": step, **{name: float(value) for name, value in metrics.items()}})
    hooks.on_evaluate(run.history.evals[-1])
