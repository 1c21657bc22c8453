"""tutorlib: full fine-tuning vs prefix tuning of small pretrained transformers, taught and measured.

**The public surface.** Lessons, solutions and exercises import from here and nowhere else::

    from tutorlib import load_model, load_dataset, attach_prefix, prepare_full_finetuning
    from tutorlib import train, TrainConfig, count_parameters, compare

Each name lives in one module of a subpackage (see ``CONTRIBUTING.md`` for the layers):

* :mod:`tutorlib.loading`     offline assets, model and dataset loading, per-architecture facts
* :mod:`tutorlib.methods`     the methods (full fine-tuning, prefix tuning, ...) and their registry
* :mod:`tutorlib.training`    the one training loop, measurement, FLOP count, parameter accounting
* :mod:`tutorlib.tasks`       sentiment and summarisation: batches, metrics, evaluation
* :mod:`tutorlib.experiments` the comparison, its results, tables, plots, and the decision helper
* :mod:`tutorlib.course`      checks, exercise builder, autograder, widgets

Names are imported on first use (PEP 562), so ``import tutorlib`` is instant and a lesson that
only needs the checks never imports torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Literal, get_args

__version__ = "0.2.0"


Mode = Literal["fast", "workshop", "full"]
"""How big a run is: the type of every ``mode`` argument (see :func:`mode`)."""
MODES: tuple[Mode, ...] = get_args(Mode)


def check_mode(value: str | None, name: str = "mode") -> Mode:
    """``value`` as a :data:`Mode` (None: the setting, :func:`mode`); a ValueError naming ``name`` otherwise."""
    if value is None:
        return mode()
    if value not in MODES:
        raise ValueError(f"{name} must be one of {', '.join(MODES)} (got {value!r}).")
    return value


def mode() -> Mode:
    """How big a run the lessons and commands make: ``"fast"``, ``"workshop"`` or ``"full"``.

    Set ``TUTORLIB_MODE=fast|workshop|full``; without it, ``TUTORLIB_FAST=1`` means fast and anything
    else full. The code path is the same in every mode; only steps and data sizes change:

    * fast: seconds per lesson, for tests and CI. The numbers show the machinery, not the answer.
    * workshop: at most about 10 minutes per lesson on a laptop CPU. Meaningful: each comparison's
      sign and rough size match full mode on the same seed (``docs/teaching.md`` says where checked).
    * full: the numbers the README reports (lesson 7 alone about 40 minutes on a 2-core CPU).
    """
    value = os.environ.get("TUTORLIB_MODE", "").strip().lower()
    if not value:
        return "fast" if os.environ.get("TUTORLIB_FAST", "0") == "1" else "full"
    if value not in MODES:
        raise ValueError(f"TUTORLIB_MODE={value!r} is not a mode; use one of {', '.join(MODES)} "
                         f"(e.g. `%env TUTORLIB_MODE=workshop` in a notebook's first cell).")
    return value


def fast_mode() -> bool:
    """True in fast mode (``TUTORLIB_MODE=fast`` or ``TUTORLIB_FAST=1``): lessons and commands shrink steps
    and data to seconds (same code path). Workshop and full mode both return False; see :func:`mode`."""
    return mode() == "fast"


# name -> the module that defines it. One home per name; nothing is defined twice.
_PUBLIC = {
    "tutorlib.loading.assets": ["fetch"],
    "tutorlib.loading.models": ["load_model", "load_tokenizer", "SequenceClassifier"],
    "tutorlib.loading.data": ["load_dataset", "describe_datasets"],
    "tutorlib.methods.full": ["prepare_full_finetuning"],
    "tutorlib.methods.head_only": ["prepare_head_only"],
    "tutorlib.methods.lora": ["attach_lora"],
    "tutorlib.methods.prompt": ["attach_prompt"],
    "tutorlib.methods.checkpoints": ["checkpoint_bytes"],
    "tutorlib.methods.prefix.model": ["attach_prefix"],
    "tutorlib.methods.prefix.attention": ["uses_prefix_attention"],
    "tutorlib.methods.prefix.reference": ["attention_weights_with_prefix", "reference_attention_with_prefix"],
    "tutorlib.methods.prefix.encoder": ["PrefixEncoder", "prefix_shape", "model_key_values", "words_prefix"],
    "tutorlib.methods.prefix.attention_share": ["prefix_attention_share"],
    "tutorlib.methods.prefix.serving": ["PrefixBank"],
    "tutorlib.training.loop": ["train", "TrainConfig"],
    "tutorlib.training.distributed": ["is_main_process"],
    "tutorlib.training.parameters": ["count_parameters", "parameter_summary", "prefix_parameter_formula",
                                     "explain_prefix_formula"],
    "tutorlib.training.parameter_groups": ["count_by_group", "place_of"],
    "tutorlib.training.measure": ["optimizer_state_bytes", "run_cost", "time_steps",
                                  "summarize_step_times"],
    "tutorlib.training.flops": ["explain_limit", "prefix_full_limit", "serving_overhead"],
    "tutorlib.training.prefix_sizes": ["prefix_size_table"],
    "tutorlib.tasks.metrics": ["expected_calibration_error", "mcnemar", "pearson", "wilson_interval"],
    "tutorlib.tasks.sentiment": ["AMBIGUITY_STD_THRESHOLD", "ambiguity_split", "evaluate_sentiment"],
    "tutorlib.tasks.summarise": ["encode_example", "evaluate_summaries", "lead_baseline"],
    "tutorlib.tasks.batching": ["pad_left"],
    "tutorlib.tasks.terminology": ["dataset_vocabulary", "domain_terms", "reference_terminology",
                                   "score_terminology"],
    "tutorlib.experiments.compare": ["compare", "LEARNING_RATES", "PREFIX_INIT_TEXT"],
    "tutorlib.experiments.results": ["find_results"],
    "tutorlib.experiments.reference": ["reference_measurement", "reference_results", "reference_results_folder"],
    "tutorlib.experiments.seeds": ["seeds_table"],
    "tutorlib.experiments.plots": ["plot_clear_vs_ambiguous", "plot_training_curves"],
    "tutorlib.experiments.refresh": ["load_refresh", "refresh_experiment", "refresh_table"],
    "tutorlib.experiments.inference": ["inference_costs", "serving_costs"],
    "tutorlib.experiments.time_to_target": ["accuracy_targets_table", "loss_targets_table",
                                            "plot_quality_against_time", "time_to_target"],
    "tutorlib.experiments.decide": ["Budget", "break_even_customers", "recommend", "storage_for_customers"],
    "tutorlib.course.checks": ["AnswerError", "check_close", "check_equal", "check_finite", "check_tensor",
                               "check_true"],
    "tutorlib.course.widgets": ["cost_explorer"],
    "tutorlib.units": ["format_mib", "format_size"],
}
# Whole modules that a lesson uses as a namespace (each task has its own ``make_batches``).
_MODULES = {
    "assets": "tutorlib.loading.assets",
    "cli": "tutorlib.cli",
    "sentiment": "tutorlib.tasks.sentiment",
    "summarise": "tutorlib.tasks.summarise",
}
_HOME = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = ["MODES", "Mode", "check_mode", "mode", "fast_mode", *_HOME, *_MODULES]


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'tutorlib' has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def home_of(name: str) -> str | None:
    """The module that defines the public name ``name`` (or that ``name`` is), None if it is not public."""
    return _HOME.get(name) or _MODULES.get(name)
