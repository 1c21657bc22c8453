"""tutorlib: full fine-tuning vs prefix tuning of small pretrained transformers, taught and measured.

The public API a lesson uses::

    from tutorlib.models import load_model            # name -> (model, tokenizer)
    from tutorlib.data import load_dataset            # name -> DatasetDict (train/validation/test)
    from tutorlib.prefix import attach_prefix         # freeze a model, add a trainable prefix
    from tutorlib.finetune import prepare_full_finetuning
    from tutorlib.train import train, TrainConfig     # one loop for every method
    from tutorlib.parameters import count_parameters, parameter_summary
    from tutorlib.compare import compare              # both methods on a task, one budget

Modules are imported on demand, so ``import tutorlib`` is instant.
"""

import os

__version__ = "0.1.0"


def fast_mode() -> bool:
    """True when ``TUTORLIB_FAST=1``: lessons and commands shrink steps and data (same code path)."""
    return os.environ.get("TUTORLIB_FAST", "0") == "1"
