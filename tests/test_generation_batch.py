"""The generation batch: chosen from the model and the free memory, and it does not change the summaries."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.tasks.generation_batch import bytes_per_row, generation_batch_size
from tutorlib.tasks.summarise import generate_summaries

DOCUMENTS = [f"The council met on day {i}. It voted on {'roads and bridges ' * (i % 4)}the plan. Rain fell."
             for i in range(19)]  # 19 documents of four different lengths: padding differs between batches


def test_batch_16_and_batch_8_write_the_same_summaries():
    """Greedy decoding with left padding: a row's summary does not depend on which rows share its batch."""
    model, tok = load_model("tiny-llama")
    eight = generate_summaries(model, tok, DOCUMENTS, max_new_tokens=12, batch_size=8, max_length=96)
    sixteen = generate_summaries(model, tok, DOCUMENTS, max_new_tokens=12, batch_size=16, max_length=96)
    assert sixteen == eight
    assert len(set(eight)) > 1  # the summaries differ between documents: the comparison is not of empty strings


def test_more_free_memory_gives_a_larger_batch_up_to_a_limit():
    model, _ = load_model("tiny-llama")
    row = bytes_per_row(model.config, 256)
    assert generation_batch_size(model, 256, free_bytes=0) == 1  # never below one row
    assert generation_batch_size(model, 256, free_bytes=2 * 16 * row) == 16  # half the free memory: 16 rows
    assert generation_batch_size(model, 256, free_bytes=2 * 20 * row) == 16  # rounded down to a power of two
    assert generation_batch_size(model, 256, free_bytes=2**40) == 32  # a CPU's limit
    assert generation_batch_size(model, 256, device="cuda", free_bytes=2**40) == 64


@pytest.mark.real
def test_smollm2_on_a_laptop_gets_at_least_16_rows():
    """SmolLM2 at the full budget's 256 tokens, with 2 GiB available (an 8 GiB laptop with a browser open)."""
    model, _ = load_model("smollm2-135m")
    assert generation_batch_size(model, 256, device="cpu", free_bytes=2 * 2**30) >= 16


def test_a_model_without_a_config_is_explained():
    with pytest.raises(TypeError, match="give the generation batch size yourself"):
        generation_batch_size(torch.nn.Linear(2, 2), 64)
