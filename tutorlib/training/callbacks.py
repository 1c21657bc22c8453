"""What happens around the training step: measurement, the progress bar, Ctrl-C. Each is a callback.

:func:`tutorlib.training.loop.train` keeps only the step itself (forward, backward, clip, update); the rest
hooks in here, the way ``transformers.TrainerCallback`` does in Hugging Face's Trainer. A callback overrides
the hooks it needs; each gets the :class:`~tutorlib.training.loop.TrainingRun` (the model, optimizer,
config and the History being filled)::

    class PrintLoss(TrainerCallback):
        def on_step_end(self, run, values):       # values: this step's numbers, before History.record
            print(values["step"], values["loss"])

    train(model, batches, config, callbacks=[PrintLoss()])

The loop always uses :func:`standard_callbacks` (energy, memory, progress bar, Ctrl-C) and then yours.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from tutorlib.training.measure import EnergyMeter, PeakMemory, optimizer_state_bytes

if TYPE_CHECKING:  # only for the type hints: loop.py imports this module
    from tutorlib.training.loop import TrainingRun


class TrainerCallback:
    """Hooks called by ``train()``; every one does nothing unless overridden.

    ``on_train_begin`` before the first step; ``on_step_end`` after each update with the step's numbers
    (``values``, a dict a callback may add to: the memory callback adds ``peak_memory_mb``);
    ``on_evaluate`` after each ``eval_fn`` call; ``on_train_end`` always, after the last step, an error or
    Ctrl-C. Set ``run.stop_requested = True`` to stop after the current step."""

    def on_train_begin(self, run: TrainingRun) -> None:
        pass

    def on_step_end(self, run: TrainingRun, values: dict) -> None:
        pass

    def on_evaluate(self, run: TrainingRun, metrics: dict) -> None:
        pass

    def on_train_end(self, run: TrainingRun) -> None:
        pass


class Callbacks:
    """Calls each callback's hook in order (``on_train_end`` in reverse: the last started ends first).

    As a context manager it brackets the training: ``on_train_begin`` on entry; on exit, even after an
    error, every ``on_train_end`` and then ``run.finish()``. A KeyboardInterrupt (a second Ctrl-C, or one
    raised while a batch was being made) stops training without a traceback: ``history.interrupted``."""

    def __init__(self, run: TrainingRun, callbacks: list[TrainerCallback]):
        self.run, self.callbacks = run, callbacks

    def on_step_end(self, values: dict) -> None:
        for callback in self.callbacks:
            callback.on_step_end(self.run, values)

    def on_evaluate(self, metrics: dict) -> None:
        for callback in self.callbacks:
            callback.on_evaluate(self.run, metrics)

    def __enter__(self) -> Callbacks:
        started = []
        try:
            for callback in self.callbacks:
                callback.on_train_begin(self.run)
                started.append(callback)
        except BaseException:
            self.callbacks = started  # end only what began
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        interrupted = kind is not None and issubclass(kind, KeyboardInterrupt)
        if interrupted:
            self.run.history.interrupted = True
        try:
            for callback in reversed(self.callbacks):
                callback.on_train_end(self.run)
        finally:
            self.run.finish()
        return interrupted  # True: the KeyboardInterrupt is handled (the history so far is returned)


def standard_callbacks(config, progress: bool, rank: int) -> list[TrainerCallback]:
    """The callbacks every ``train()`` uses, in order: energy (only with ``config.measure_energy``; first,
    so that codecarbon's ~2.5 s set-up counts as neither training memory nor time), peak memory, the
    progress bar, Ctrl-C."""
    energy = [MeasureEnergy()] if config.measure_energy and rank == 0 else []
    return [*energy, MeasureMemory(collect_garbage=config.collect_garbage),
            ProgressBar(enabled=progress and rank == 0), StopOnCtrlC()]


# ----------------------------------------------------------------------------- measurement


class MeasureEnergy(TrainerCallback):
    """Estimates the run's energy (:class:`~tutorlib.training.measure.EnergyMeter`) into ``history.energy``."""

    def on_train_begin(self, run):
        self.meter = EnergyMeter().start()

    def on_train_end(self, run):
        run.history.energy = self.meter.stop()


class MeasureMemory(TrainerCallback):
    """Peak memory so far at each step (``values["peak_memory_mb"]``), the memory in use at the start, and
    the optimizer state's bytes once AdamW has made it (after the first update).

    ``collect_garbage``: one full garbage collection before the baseline is read, outside the timed steps;
    without it nothing here walks Python's objects (see :class:`~tutorlib.training.measure.PeakMemory`)."""

    def __init__(self, collect_garbage: bool = False):
        self.collect_garbage = collect_garbage

    def on_train_begin(self, run):
        self.memory = PeakMemory(run.device, collect_garbage=self.collect_garbage).start()
        run.history.memory_kind, run.history.memory_baseline_mb = self.memory.kind, self.memory.baseline_mb

    def on_step_end(self, run, values):
        values["peak_memory_mb"] = self.memory.peak_mb
        if values["step"] == 1:  # AdamW creates its state at the first update
            run.history.optimizer_state_bytes = optimizer_state_bytes(run.adamw)

    def on_train_end(self, run):
        self.memory.stop()


class StepClock:
    """The wall time of one step: ``with StepClock(device) as clock: ...`` then ``clock.seconds``. On a GPU
    it waits for the step's queued kernels first, so that they count in this step and not a later one."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> StepClock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


# ----------------------------------------------------------------------------- what the learner sees


class ProgressBar(TrainerCallback):
    """A tqdm bar of the steps, with the loss and learning rate every ``config.log_every`` steps and one
    line per evaluation."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def on_train_begin(self, run):
        self.bar = tqdm(total=run.config.steps, desc="training", disable=not self.enabled, dynamic_ncols=True)

    def on_step_end(self, run, values):
        self.bar.update(1)
        if values["step"] % run.config.log_every == 0:
            self.bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")

    def on_evaluate(self, run, metrics):
        if self.enabled:
            self.bar.write(f"step {metrics['step']}: "
                           + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step"))

    def on_train_end(self, run):
        self.bar.close()


class StopOnCtrlC(TrainerCallback):
    """First Ctrl-C: finish the current step, then stop (never a half-updated model); second: stop at once.
    Either way ``train()`` returns the history so far with ``interrupted=True``. Signals reach only the main
    thread (where a notebook cell runs); elsewhere Ctrl-C acts as usual."""

    _previous, pressed = None, False

    def on_train_begin(self, run):
        self.run = run
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler) or signal.default_int_handler

    def _handler(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = self.run.stop_requested = True
        print("\nCtrl-C: stopping after this step (press again to stop at once).", file=sys.stderr)

    def on_train_end(self, run):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        run.history.interrupted |= self.pressed
        if run.history.interrupted:  # a notebook user wants the curve so far, not a traceback
            print(f"\nTraining stopped by Ctrl-C after step {len(run.history.loss)} of {run.config.steps}; "
                  f"returning the history so far (history.interrupted is True). The weights are those after "
                  f"that step.", file=sys.stderr)
