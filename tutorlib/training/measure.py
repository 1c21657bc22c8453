"""The single measurement helper: parameters, bytes, step time, peak memory, energy, checkpoint size.

    >>> import torch
    >>> layer = torch.nn.Linear(4, 2)                       # 4 x 2 weights + 2 biases
    >>> count_parameters(layer).total, parameter_bytes(layer)     # fp32: 4 bytes each
    (10, 40)

Units: bytes are bytes, ``*_mb`` are MiB (2**20 bytes), seconds are wall-clock seconds, energy is kWh.
Each number says how it was measured (``memory_kind``, ``energy_method``): a CPU's peak RSS and a GPU's
peak of allocated tensors are different quantities, and so are a codecarbon estimate and CPU-seconds
times an assumed wattage. Compare runs only like for like.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import psutil
import torch
from torch import nn

from tutorlib.methods.checkpoints import checkpoint_bytes
from tutorlib.training.parameters import count_parameters
from tutorlib.units import to_mib

# ----------------------------------------------------------------------------- parameters and bytes


def parameter_bytes(module: nn.Module, trainable_only: bool = False) -> int:
    """Bytes the parameters take in memory: elements x bytes each (4 for fp32, 2 for fp16/bf16)."""
    return sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad or not trainable_only)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer, include_step: bool = False) -> int:
    """Bytes of the optimizer's state tensors. AdamW keeps two moments (exp_avg, exp_avg_sq) per parameter
    that received a gradient: for fp32 exactly 2 x 4 bytes x those parameters. 0 before the first
    ``optimizer.step()`` (the state is created lazily). ``include_step`` adds the per-tensor step counters."""
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for key, value in state.items() if torch.is_tensor(value) and (include_step or key != "step"))


# ----------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _lifetime_peak_rss_bytes() -> int | None:
    """The OS's record of this process's peak RSS (``ru_maxrss``), or None where there is none (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def _return_freed_memory_to_os(collect_garbage: bool = True) -> None:
    """Let RSS count live memory only. Without this, glibc keeps freed pages resident, and a run made
    right after a bigger one reuses them: measured here, a frozen-model run after a full fine-tuning
    run showed +0 MiB instead of the +75 MiB it shows in a fresh process (with this: +62 to +83 MiB).

    ``collect_garbage`` first runs a full garbage collection, so that objects kept alive only by reference
    cycles (a dropped model, say) are freed too. It walks every Python object: about 1 s in a process
    holding half a million of them (a lesson's kernel, a test run); the trim alone takes milliseconds."""
    if collect_garbage:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim
        pass


@contextmanager
def older_objects_set_aside() -> Iterator[None]:
    """Inside the block, a full garbage collection walks only the Python objects made inside it.

    A comparison collects once before each method's timed steps, so that each memory baseline holds live
    objects only. In a process holding half a million objects (a lesson's kernel) each of those collections
    took about a second, nearly all of it spent on objects that were there before the comparison began.
    ``gc.freeze`` sets those aside for the block: garbage among them (a model dropped in a reference cycle
    before the comparison) is collected after the block instead of during it, and sits in every method's
    baseline alike, so each method's memory increase is unchanged. Only an outermost block freezes; objects
    someone else froze (an outer block, the learner) stay as they are.
    """
    if gc.get_freeze_count():  # already set aside by a caller: leave their freeze alone
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def peak_memory_mb(device: str | torch.device = "cpu") -> float:
    """This process's peak memory so far (MiB). It never goes down, so it cannot compare two runs in one
    process: use :class:`PeakMemory` around each. CPU: peak RSS (``ru_maxrss``, else the current RSS);
    CUDA: peak of allocated tensors (``torch.cuda.max_memory_allocated``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return to_mib(torch.cuda.max_memory_allocated(device))
    return to_mib(_lifetime_peak_rss_bytes() or _rss_bytes())


class PeakMemory:
    """The peak memory (MiB) during a block of code: ``with PeakMemory() as mem: ...`` then ``mem.peak_mb``
    (also readable live), ``mem.baseline_mb`` (in use at the start) and ``mem.increase_mb`` (the difference).

    CPU (``kind="cpu-rss"``): the process RSS, sampled every ``interval_s`` by a background thread (a
    sample costs ~12 us) and whenever ``peak_mb`` is read. Why not just ``ru_maxrss``: it never goes down,
    so a second run in the same process would inherit the first one's peak. When the block does set a
    new lifetime record, ``ru_maxrss`` is used too, so that peak is exact rather than sampled. RSS is the
    whole process (Python, libraries, the model, data), so ``increase_mb`` is the fairer side-by-side number;
    ``start()`` first returns freed memory to the OS (glibc ``malloc_trim``), or a later run would reuse it,
    after a full garbage collection unless ``collect_garbage=False`` (then memory held only by reference
    cycles stays in the baseline until Python's own collector frees it, possibly during the block).
    CUDA (``kind="cuda-allocated"``): ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
    tensors only, not the CUDA context or the allocator's cache.
    """

    def __init__(self, device: str | torch.device = "cpu", interval_s: float = 0.005, collect_garbage: bool = True):
        self.device, self.collect_garbage = torch.device(device), collect_garbage
        self.kind = "cuda-allocated" if self.device.type == "cuda" else "cpu-rss"
        self.interval_s, self.baseline_mb = interval_s, 0.0
        self._peak_bytes, self._lifetime_at_start, self._stopped = 0, None, False
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None

    def start(self) -> PeakMemory:
        self._stopped = False
        if self.kind == "cuda-allocated":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_mb = to_mib(torch.cuda.memory_allocated(self.device))
            return self
        _return_freed_memory_to_os(self.collect_garbage)
        self._lifetime_at_start, self._peak_bytes = _lifetime_peak_rss_bytes(), _rss_bytes()
        self.baseline_mb = to_mib(self._peak_bytes)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()
        return self

    def _record(self, nbytes: int) -> None:
        with self._lock:  # the sampler thread and peak_mb both raise the peak
            self._peak_bytes = max(self._peak_bytes, nbytes)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._record(_rss_bytes())

    @property
    def peak_mb(self) -> float:
        """Peak memory (MiB) from ``start()`` to now, or to ``stop()``."""
        if self._stopped:
            return to_mib(self._peak_bytes)
        if self.kind == "cuda-allocated":
            self._peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return to_mib(self._peak_bytes)
        self._record(_rss_bytes())
        lifetime = _lifetime_peak_rss_bytes()
        if lifetime is not None and self._lifetime_at_start is not None and lifetime > self._lifetime_at_start:
            self._record(lifetime)  # a new lifetime record can only have been set during this block
        return to_mib(self._peak_bytes)

    @property
    def increase_mb(self) -> float:
        """Peak minus the memory in use at the start (MiB): what the block itself added."""
        return self.peak_mb - self.baseline_mb

    def stop(self) -> float:
        """Stop measuring (the peak is frozen from here on); returns the peak in MiB."""
        peak = self.peak_mb
        self._stopped = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        return peak

    def __enter__(self) -> PeakMemory:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------- time


@dataclass
class StepTiming:
    """Seconds per step after warm-up: ``median_s`` (shrugs off the odd slow step on a shared machine),
    ``mean_s``, ``steps_timed``, ``warmup_steps`` (left out), ``tokens_per_s`` (None without token counts)."""

    median_s: float
    mean_s: float
    steps_timed: int
    warmup_steps: int
    tokens_per_s: float | None = None


def summarize_step_times(seconds: list[float], tokens: list[int] | None = None, warmup: int = 2) -> StepTiming:
    """Step time over ``seconds[warmup:]`` (first steps allocate optimizer state and warm caches; at least
    one step is kept). ``tokens_per_s``: tokens / seconds over the same steps."""
    if not seconds:
        raise ValueError("No step times to summarise: the run recorded no step.")
    warmup = min(warmup, len(seconds) - 1)
    kept = seconds[warmup:]
    tokens_per_s = sum(tokens[warmup:]) / sum(kept) if tokens and sum(kept) > 0 else None
    return StepTiming(statistics.median(kept), statistics.fmean(kept), len(kept), warmup, tokens_per_s)


def time_steps(step_fn: Callable[[], object], steps: int = 10, warmup: int = 2,
               tokens_per_step: int | None = None, device: str | torch.device = "cpu") -> StepTiming:
    """Call ``step_fn()`` ``warmup + steps`` times; time the last ``steps`` calls. On CUDA the GPU is
    synchronised around each call, or queued kernels would be timed in whichever later call waits for them."""
    cuda = torch.device(device).type == "cuda"
    seconds = []
    for _ in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step_fn()
        if cuda:
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return summarize_step_times(seconds, [tokens_per_step] * len(seconds) if tokens_per_step else None, warmup)


# ----------------------------------------------------------------------------- energy

# For the fallback only: codecarbon's own default for a CPU it does not know ("4 W per thread", as it
# logs on the course machine), so both methods start from the same CPU assumption.
ASSUMED_WATTS_PER_CORE = 4.0


@dataclass
class EnergyEstimate:
    """Energy of a block: ``kwh``, ``method`` ("codecarbon" or "cpu-time"), ``seconds`` (wall clock),
    ``cpu_seconds`` (process CPU time, all threads), ``cpu_power_w`` (average, estimated), ``details``."""

    kwh: float
    method: str
    seconds: float
    cpu_seconds: float
    cpu_power_w: float
    details: str  # how the number was made, in words: show it beside the number


class EnergyMeter:
    """Estimate the energy of a block: ``with EnergyMeter() as meter: ...`` then ``meter.estimate``.
    An estimate, never a meter reading.

    ``"codecarbon"``: codecarbon's ``OfflineEmissionsTracker`` (no network), this process only. Without
    a power sensor (RAPL, NVML) its CPU power is CPU load x the CPU's TDP (on the 2-core course machine,
    an unknown CPU: 4 W per thread, 8 W) plus a RAM model (10 W there); so it is mostly wall time.
    Quiet (no log lines, no emissions.csv); its first start in a process costs ~2.5 s (hardware
    detection, cached afterwards), which stays outside the block. ``"cpu-time"``: process CPU-seconds x
    ``watts_per_core``, CPU only (no RAM, no GPU). ``"auto"``: codecarbon if it starts, else cpu-time
    (``details`` says why). ``country_iso_code`` changes codecarbon's CO2 figure only, not the kWh.
    """

    def __init__(self, method: str = "auto", *, country_iso_code: str = "USA",
                 watts_per_core: float = ASSUMED_WATTS_PER_CORE):
        if method not in ("auto", "codecarbon", "cpu-time"):
            raise ValueError(f"Unknown energy method {method!r}; choose 'auto', 'codecarbon' or 'cpu-time'.")
        self.method, self.country_iso_code, self.watts_per_core = method, country_iso_code, watts_per_core
        self.estimate: EnergyEstimate | None = None
        self._tracker, self._why_not_codecarbon = None, ""

    def start(self) -> EnergyMeter:
        if self.method != "cpu-time":
            try:
                self._tracker = _start_codecarbon(self.country_iso_code)
            except Exception as err:  # not installed, or a platform it cannot read
                if self.method == "codecarbon":
                    raise RuntimeError(f"codecarbon could not start ({type(err).__name__}: {err}). Install it "
                                       "with `pip install 'tutorlib[energy]'`, "
                                       "or use EnergyMeter('cpu-time').") from err
                self._why_not_codecarbon = f"; codecarbon unavailable ({type(err).__name__}: {err})"
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def stop(self) -> EnergyEstimate:
        seconds, cpu_seconds = time.perf_counter() - self._wall0, time.process_time() - self._cpu0
        data = None
        if self._tracker is not None:
            self._tracker.stop()
            data, self._tracker = self._tracker.final_emissions_data, None
        if data is not None:
            watts = {part: float(getattr(data, f"{part}_energy")) * 3.6e6 / max(data.duration, 1e-9)
                     for part in ("cpu", "ram", "gpu")}  # average power: kWh x 3.6e6 = J, / s = W
            self.estimate = EnergyEstimate(
                float(data.energy_consumed), "codecarbon", seconds, cpu_seconds, watts["cpu"],
                f"codecarbon {data.codecarbon_version} OfflineEmissionsTracker, process mode, model-based "
                f"estimate (not a meter); average power: CPU {watts['cpu']:.1f} W, RAM {watts['ram']:.1f} W, "
                f"GPU {watts['gpu']:.1f} W")
        else:
            joules = cpu_seconds * self.watts_per_core
            self.estimate = EnergyEstimate(
                joules / 3.6e6, "cpu-time", seconds, cpu_seconds, joules / max(seconds, 1e-9),
                f"CPU-seconds ({cpu_seconds:.1f} s) x an assumed {self.watts_per_core:g} W per busy core; "
                f"CPU only, no RAM or GPU{self._why_not_codecarbon}")
        return self.estimate

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _start_codecarbon(country_iso_code: str):
    """A quiet, file-less codecarbon tracker of this process (imported here: codecarbon is optional)."""
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after the import, which resets it to INFO
    tracker = OfflineEmissionsTracker(country_iso_code=country_iso_code, output_methods=[], log_level="error",
                                      tracking_mode="process", allow_multiple_runs=True, measure_power_secs=5)
    tracker.start()
    return tracker


# ----------------------------------------------------------------------------- one run's cost


@dataclass
class RunCost:
    """What one training run cost, comparable side by side; ``None`` = not measured."""

    name: str
    device: str
    steps: int
    median_step_seconds: float  # after warm-up steps
    tokens_per_second: float | None
    train_seconds: float  # sum of step times: no evaluation, no set-up
    peak_memory_mb: float  # see memory_kind
    peak_memory_increase_mb: float  # peak minus memory in use when training started
    memory_kind: str  # "cpu-rss" or "cuda-allocated"
    trainable_params: int
    total_params: int
    optimizer_state_bytes: int
    checkpoint_bytes: int | None
    energy_kwh: float | None
    energy_method: str | None  # "codecarbon" or "cpu-time": never compare across methods
    energy_details: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def run_cost(history, model: nn.Module, checkpoint_paths: Iterable[str | os.PathLike] | None = None, *,
             energy: EnergyEstimate | None = None, warmup_steps: int = 2, name: str = "") -> RunCost:
    """Summarise a run from its ``history`` (:func:`tutorlib.training.loop.train`), the trained ``model``, the
    paths ``model.save_checkpoint(folder)`` returned, and ``energy`` (default: ``history.energy``)."""
    timing = summarize_step_times(history.seconds, history.tokens, warmup_steps)
    energy = energy or history.energy
    peak = max(history.peak_memory_mb)
    counted = count_parameters(model)
    return RunCost(
        name=name, device=history.device, steps=len(history.loss), median_step_seconds=timing.median_s,
        tokens_per_second=timing.tokens_per_s, train_seconds=sum(history.seconds), peak_memory_mb=peak,
        peak_memory_increase_mb=peak - history.memory_baseline_mb, memory_kind=history.memory_kind,
        trainable_params=counted.trainable, total_params=counted.total,
        optimizer_state_bytes=history.optimizer_state_bytes,
        checkpoint_bytes=None if checkpoint_paths is None else checkpoint_bytes(checkpoint_paths),
        energy_kwh=energy.kwh if energy else None, energy_method=energy.method if energy else None,
        energy_details=energy.details if energy else None)
