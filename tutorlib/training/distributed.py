"""More than one process: what the training loop and a comparison need to run on N GPUs (or N CPU processes).

Started by ``accelerate launch --num_processes N -m tutorlib compare ...`` (or ``torchrun``, or
``accelerate.notebook_launcher`` in a notebook), every process runs the same code on its own device. The
kit's rule for sharing work between them:

* **Training**: every process builds the same list of batches; each global batch of B rows is cut into N
  consecutive shares (rows ``[r*B/N, (r+1)*B/N)`` go to process r), and DistributedDataParallel averages
  the N gradients. So N processes with a global batch B take the same steps as 1 process with batch B.
* **Evaluation**: process r scores the r-th contiguous slice of the test rows; the per-item results are
  gathered (``gather_for_metrics``) in rank order, so every process holds the whole test set's results.
* **Writing and measuring**: results, plots and checkpoints are written by the main process (rank 0) only;
  time, memory and energy in a results table are the main process's own.

With one process (a plain ``python`` or a notebook) every function here is a no-op or the obvious thing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

MIXED_PRECISION = ("no", "bf16", "fp16")


def process_count() -> int:
    """How many processes were launched together (``WORLD_SIZE``, set by accelerate launch/torchrun); 1 if none."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    """This process's rank, 0 to ``process_count() - 1`` (``RANK``); 0 when run alone."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True in the process that writes files and reports times (rank 0), and when run alone."""
    return process_index() == 0


def make_accelerator(mixed_precision: str, device: torch.device) -> Accelerator:
    """An ``Accelerator`` for one ``train()`` call.

    Alone (one process), Accelerate's settings are cleared first, so that each call may pick its own
    precision and device (Accelerate keeps them process-wide otherwise); the loop then places the model
    on ``device`` itself (``device_placement=False``), so ``TrainConfig(device="cuda:1")`` works. Launched
    with N processes, Accelerate's own settings (one device per process) are kept and used."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision!r}: choose 'no' (fp32), 'bf16' (GPUs since Ampere, "
                         f"and CPUs) or 'fp16' (older GPUs such as the T4; CUDA only).")
    if mixed_precision == "fp16" and device.type != "cuda":
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU (its loss scaling is CUDA's); on the CPU use "
                         "'bf16' or 'no'.")
    if process_count() == 1:
        AcceleratorState._reset_state(reset_partial_state=True)  # this call's precision and device, not a past one's
        return Accelerator(cpu=device.type == "cpu", mixed_precision=mixed_precision, device_placement=False)
    return Accelerator(cpu=device.type == "cpu", mixed_precision=mixed_precision)


def release_accelerator() -> None:
    """After a one-process run: forget Accelerate's settings, so that ``accelerate.notebook_launcher`` (which
    refuses to start once Accelerate is set up in the notebook's process) can still be used afterwards."""
    if process_count() == 1:
        AcceleratorState._reset_state(reset_partial_state=True)


def share_of_batch(batch: Mapping, rank: int, processes: int) -> dict:
    """This process's rows of a global batch: tensors (B, ...) are cut into ``processes`` consecutive
    shares (sizes differ by at most 1 when B is not a multiple); anything else is passed as it is."""
    if processes == 1:
        return dict(batch)
    return {key: torch.tensor_split(value, processes)[rank] if torch.is_tensor(value) and value.ndim else value
            for key, value in batch.items()}


def rows_in(batch: Mapping) -> int | None:
    """The number of rows (B) of a batch: the first dimension of its first tensor with one; None if none has."""
    return next((int(v.shape[0]) for v in batch.values() if torch.is_tensor(v) and v.ndim), None)


class TooFewRows:
    """Skips global batches that cannot give each of N processes at least one row (every process must take
    part in every step, or the others wait for it forever), with one warning naming how many were skipped."""

    def __init__(self, processes: int):
        self.processes, self.skipped, self.warned = processes, 0, False

    def keep(self, batch: Mapping) -> bool:
        rows = rows_in(batch)
        if self.processes == 1 or rows is None or rows >= self.processes:
            return True
        self.skipped += 1
        if not self.warned and is_main_process():
            warnings.warn(f"A batch of {rows} rows cannot give each of the {self.processes} processes a row, so it "
                          f"is skipped (e.g. the last, short batch of an epoch). Use batches of at least "
                          f"{self.processes} rows (ideally a multiple of {self.processes}) or fewer processes.")
            self.warned = True
        return False


def gather_in_order(predict: Callable, dataset) -> list:
    """Run ``predict(rows) -> list`` (one result per row) on this process's slice of ``dataset`` and return
    every process's results, concatenated in dataset order. Alone: ``predict(dataset)``.

    A process whose slice is empty (fewer test rows than processes) predicts nothing and still takes part."""
    processes = process_count()
    if processes == 1:
        return list(predict(dataset))
    part = dataset.shard(num_shards=processes, index=process_index(), contiguous=True)
    mine = list(predict(part)) if len(part) else []
    # A list of Python objects from each process -> one list, process 0's items first.
    return Accelerator().gather_for_metrics(mine, use_gather_object=True)


def distributed_environment() -> dict:
    """For a results file: how many processes ran, and which one's times, memory and energy are reported."""
    processes = process_count()
    return {"processes": processes,
            "measured_on": "this process" if processes == 1 else f"the main process (rank 0) of {processes}"}


def distributed_notes(environment: dict) -> list[str]:
    """A results table's note when several processes trained (nothing when one did)."""
    processes = environment.get("processes", 1)
    if processes == 1:
        return []
    return [f"Processes: {processes} trained together (DistributedDataParallel, each on its share of every batch); "
            f"step time, memory and energy are those of the main process (rank 0) alone, not summed over the "
            f"{processes}; quality is scored on every test item (each process scored a slice, then gathered)."]
