"""What a prefix costs at inference, and what serving N tasks costs: N fine-tuned copies vs one frozen
model + N prefixes.

    >>> from tutorlib.experiments.inference import inference_costs, serving_costs
    >>> inference_costs("minilm-l6")                              # doctest: +SKIP  latency/memory, with and without
    >>> serving_costs("minilm-l6", tasks=(1, 10, 100))            # doctest: +SKIP  one row per N

The source text says prefix tuning "enables deployment on devices with limited GPU capacity". Two
things are measured here to test it:

* **one task**: a forward pass of the model alone and of the same model with a prefix (P virtual tokens
  per layer) on the same batch: median latency and the peak memory the pass adds. A prefix adds work
  and memory; it never removes a weight, so the device must still hold the whole model.
* **N tasks**: the weights a server must hold. N fine-tuned copies hold N x (model bytes); one frozen
  model with a :class:`~tutorlib.methods.prefix.serving.PrefixBank` holds (model bytes) + N x (prefix
  bytes). Memory is *measured* (process RSS held, after loading) up to ``measure_copies_up_to`` copies and
  every bank size asked for; larger N come from the formula above (``measured=False`` in the row).
"""

from __future__ import annotations

import copy
import gc

import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.methods.prefix.serving import PrefixBank
from tutorlib.training.measure import PeakMemory, _return_freed_memory_to_os, _rss_bytes, parameter_bytes, time_steps
from tutorlib.units import MIB


def _batch(tokenizer, batch_size: int, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    """A batch of random token ids, (B, T), every position real: latency depends on shapes, not words."""
    generator = torch.Generator().manual_seed(seed)
    low = min(1000, tokenizer.vocab_size // 2)
    input_ids = torch.randint(low, tokenizer.vocab_size, (batch_size, seq_len), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


@torch.no_grad()
def inference_costs(model_name: str = "minilm-l6", *, prefix_length: int = 10, batch_size: int = 8,
                    seq_len: int = 64, repeats: int = 10, seed: int = 0) -> dict:
    """One forward pass of ``model_name`` without and with a prefix, on the same (batch_size, seq_len) batch.

    Returns a dict: model, weight_bytes (every parameter, fp32), prefix_bytes, and per variant
    ("without prefix", "with prefix") the median latency (s) and the peak memory the pass adds (MiB,
    process RSS on a CPU, allocated tensors on a GPU); ``latency_ratio`` = with / without.
    """
    if isinstance(prefix_length, bool) or not isinstance(prefix_length, int) or prefix_length < 1:
        raise ValueError(f"prefix_length must be a whole number >= 1 (got {prefix_length!r}).")
    model, tokenizer = load_model(model_name, seed=seed)  # its natural head: a BERT classifies, the others generate
    model.eval()
    batch = _batch(tokenizer, batch_size, seq_len, seed)
    rows = {}
    model(**batch)  # a first pass allocates what every later pass reuses: not the pass's own cost
    with PeakMemory() as memory:
        model(**batch)
    timing = time_steps(lambda: model(**batch), steps=repeats, warmup=2)
    rows["without prefix"] = {"latency_s": timing.median_s, "pass_memory_mb": memory.increase_mb}
    weight_bytes = parameter_bytes(model)
    tuned = attach_prefix(model, prefix_length, seed=seed, model_name=model_name)
    tuned.eval()
    tuned(**batch)
    with PeakMemory() as memory:
        tuned(**batch)
    timing = time_steps(lambda: tuned(**batch), steps=repeats, warmup=2)
    rows["with prefix"] = {"latency_s": timing.median_s, "pass_memory_mb": memory.increase_mb}
    prefix = tuned.export_prefix()
    return {"model": model_name, "batch_size": batch_size, "seq_len": seq_len, "prefix_length": prefix_length,
            "weight_bytes": weight_bytes, "prefix_bytes": prefix.numel() * prefix.element_size(), **rows,
            "latency_ratio": rows["with prefix"]["latency_s"] / rows["without prefix"]["latency_s"],
            "torch_threads": torch.get_num_threads()}


def _held_mb(build) -> tuple[object, float]:
    """Run ``build()`` and return (what it built, the RSS it added and still holds, MiB)."""
    _return_freed_memory_to_os()
    before = _rss_bytes()
    built = build()
    _return_freed_memory_to_os()
    return built, (_rss_bytes() - before) / MIB


def serving_costs(model_name: str = "minilm-l6", *, tasks=(1, 10, 100), prefix_length: int = 10,
                  measure_copies_up_to: int = 10, seed: int = 0) -> list[dict]:
    """The weights a server holds to serve N tasks, both ways, for each N in ``tasks``.

    Returns one dict per N: tasks, full_formula_mb (N x model), prefix_formula_mb (model + N x prefix),
    full_measured_mb / prefix_measured_mb (RSS held, MiB; None where not measured), and
    ``full_measured`` (False: the full number for this N is the formula only, to spare the machine's
    memory). The model's own bytes are counted in both columns: the first copy for fine-tuning, the
    frozen model for prefixes.
    """
    bad = [n for n in tasks if isinstance(n, bool) or not isinstance(n, int) or n < 1]
    if bad:
        raise ValueError(f"tasks must be whole numbers >= 1 (got {bad[0]!r}), e.g. (1, 10, 100).")
    model, _ = load_model(model_name, seed=seed)
    model.eval()
    model_mb = parameter_bytes(model) / MIB
    rows = []
    for n in tasks:
        full_mb = None
        if n <= measure_copies_up_to:  # n - 1 extra copies beside the one already loaded
            copies, extra_mb = _held_mb(lambda: [copy.deepcopy(model) for _ in range(n - 1)])
            full_mb = model_mb + extra_mb
            del copies
        tuned = attach_prefix(model, prefix_length, seed=seed, model_name=model_name)
        bank = PrefixBank(tuned)
        generator = torch.Generator().manual_seed(seed)
        shape = tuned.shape.tensor_shape(prefix_length)

        def fill(bank=bank, n=n):  # bound now: the loop deletes bank before the next N
            for k in range(n):
                bank.add(f"task-{k}", 0.02 * torch.randn(shape, generator=generator))
            return bank

        _, bank_mb = _held_mb(fill)
        prefix_mb = bank.stored_bytes() / MIB / n
        rows.append({"tasks": n, "model_mb": model_mb, "prefix_mb_each": prefix_mb,
                     "full_formula_mb": n * model_mb, "prefix_formula_mb": model_mb + n * prefix_mb,
                     "full_measured_mb": full_mb, "prefix_measured_mb": model_mb + bank_mb,
                     "full_measured": full_mb is not None})
        model = tuned.detach_prefix()  # the plain model again for the next N
        del bank, tuned
        gc.collect()
    return rows


def measure_inference(models=("minilm-l6", "smollm2-135m"), *, tasks=(1, 10, 100), copies_up_to=None) -> dict:
    """Everything above for each model, as one JSON-able dict: ``{"inference": [...], "serving": {model: rows}}``.

    ``copies_up_to``: model -> how many fine-tuned copies to hold for real (default: 10 for MiniLM-L6,
    3 for larger models, to spare a shared machine's memory); beyond that the formula."""
    copies_up_to = copies_up_to or {}
    report = {"inference": [], "serving": {}, "torch_threads": torch.get_num_threads()}
    for name in models:
        report["inference"].append(inference_costs(name))
        gc.collect()
        limit = copies_up_to.get(name, 10 if name in ("minilm-l6", "tiny-bert", "tiny-gpt2", "tiny-llama") else 3)
        report["serving"][name] = serving_costs(name, tasks=tasks, measure_copies_up_to=limit)
        gc.collect()
    return report
