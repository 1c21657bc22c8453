"""Shared pieces of the benchmarks: threads, the machine, models, one training step timed by phase,
and interleaved repetitions (A B B A ...) so that a shared machine's slow moments hit every method alike.

Every number the benchmarks print is a median over repetitions; every ratio is a ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `python bench/run.py`

from tutorlib.training.measure import PeakMemory, optimizer_state_bytes  # noqa: E402

# Random GPT-2 configs at the sizes of the real ones (no pretrained GPT-2 weights exist offline;
# speed and memory depend on the shapes only).
GPT2_SIZES = {
    "gpt2-small": dict(n_layer=12, n_embd=768, n_head=12),  # 124M, the paper's GPT-2 family
    "distilgpt2-size": dict(n_layer=6, n_embd=768, n_head=12),  # 82M
}


def part_arguments(argv, doc: str, *, device: bool = True, extra=None) -> argparse.Namespace:
    """Parse the options every bench part takes (--quick, --threads, and --device unless a part runs
    on the CPU only), then fix the thread count. ``extra(parser)`` adds a part's own options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets (minutes on 2 cores)")
    parser.add_argument("--threads", type=int, default=1)
    if device:
        parser.add_argument("--device", default="cpu")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    return args


def set_threads(threads: int) -> None:
    """Fix torch's thread count (intra-op) and use one inter-op thread: repeatable timings.
    Also quiets transformers' progress bars and notices, which would bury the tables."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def machine() -> dict:
    """What ran the benchmark: CPU, cores, threads, load, versions, date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")}


def device_of(name: str = "auto") -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- models and batches


def random_gpt2(size: str, seed: int = 0):
    """A randomly initialised GPT2LMHeadModel of a real GPT-2 size (see GPT2_SIZES), eval mode, fp32."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(**GPT2_SIZES[size], n_positions=1024, vocab_size=50257)
    return GPT2LMHeadModel(config).eval()


def load(name: str, seed: int = 0):
    """A model by benchmark name: a GPT2_SIZES key (random weights) or a tutorlib model name."""
    if name in GPT2_SIZES:
        return random_gpt2(name, seed)
    from tutorlib.loading.models import load_model

    return load_model(name, seed=seed)[0]


def lm_batch(vocab: int, batch_size: int, seq_len: int, seed: int = 0) -> dict:
    """Random token ids (B, T), no padding; labels = the ids (next-token loss)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def classification_batch(vocab: int, batch_size: int, seq_len: int, seed: int = 0) -> dict:
    """Random token ids (B, T), no padding; labels (B,) in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (batch_size, seq_len), generator=g)  # skip BERT's special ids
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (batch_size,), generator=g)}


def batch_for(model, batch_size: int, seq_len: int, seed: int = 0) -> dict:
    """The right kind of random batch for a causal LM or a classifier."""
    from tutorlib.loading.models import head_of, pretrained_part

    vocab = pretrained_part(model).config.vocab_size
    maker = lm_batch if head_of(model) == "causal-lm" else classification_batch
    return maker(vocab, batch_size, seq_len, seed)


# ----------------------------------------------------------------------------- one training step


class TimedStep:
    """One training step exactly as tutorlib.training.loop makes it (forward, backward, clip to norm 1, AdamW
    update, gradients set to None), timed by phase and watched by PeakMemory.

    Calling it returns ``{"forward_s", "backward_s", "optimizer_s", "step_s"}`` (seconds per phase).
    :meth:`memory_increase_mb` runs one more step under PeakMemory and returns its peak above what was in
    use when it began (activations, gradients, temporaries; the optimizer state exists from the first
    step on and is reported by :attr:`optimizer_state_bytes`). Memory is measured apart from time on
    purpose: PeakMemory first returns freed memory to the OS, so a timed step would pay to fault it in again.
    """

    def __init__(self, model: torch.nn.Module, batch: dict, lr: float = 1e-4, device: torch.device | None = None):
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).train()
        self.batch = {k: v.to(self.device) for k, v in batch.items()}
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr)

    def __call__(self) -> dict:
        _sync(self.device)
        t0 = time.perf_counter()
        loss = self.model(**self.batch).loss
        _sync(self.device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(self.device)
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        _sync(self.device)
        t3 = time.perf_counter()
        return {"forward_s": t1 - t0, "backward_s": t2 - t1, "optimizer_s": t3 - t2, "step_s": t3 - t0}

    def memory_increase_mb(self) -> float:
        """Peak memory of one more step above the memory in use before it (MiB)."""
        with PeakMemory(self.device) as memory:
            self()
        return memory.increase_mb

    @property
    def optimizer_state_bytes(self) -> int:
        return optimizer_state_bytes(self.optimizer)


class TimedForward:
    """One forward pass without gradients (inference), timed; returns ``{"step_s": seconds}``."""

    def __init__(self, fn: Callable[[], object], device: torch.device | None = None):
        self.fn, self.device = fn, device or torch.device("cpu")

    def __call__(self) -> dict:
        _sync(self.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            self.fn()
        _sync(self.device)
        return {"step_s": time.perf_counter() - t0}


def interleaved(runners: dict[str, Callable[[], dict]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Run each runner ``warmup`` times (not kept), then ``repeats`` rounds in alternating order
    (A B, B A, A B, ...). Returns {name: {field: median}} plus ``"runs"`` (every kept measurement)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    kept: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            kept[name].append(runners[name]())
    return {name: {**medians(runs), "runs": runs} for name, runs in kept.items()}


def medians(runs: list[dict]) -> dict:
    """Median of every numeric field over runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


# ----------------------------------------------------------------------------- output


def save(part: str, data: dict) -> Path:
    """Write bench/results/<part>.json (with the machine) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{part}.json"
    path.write_text(json.dumps({"part": part, "machine": machine(), **data}, indent=1, default=float) + "\n")
    return path


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table: columns are (key, header, format) e.g. ("step_s", "step s", "{:.3f}")."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([("-" if row.get(key) is None else fmt.format(row[key])) for key, _, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def say(text: str = "") -> None:
    print(text, flush=True)
