"""The FLOP count of a training step, checked against cases worked out by hand."""

import pytest
from transformers import BertConfig, GPT2Config, LlamaConfig

from tutorlib.training.flops import (
    explain_limit,
    inference_overhead,
    method_full_limit,
    model_dims,
    prefix_full_limit,
    serving_overhead,
    step_flops,
)


def tiny_gpt2():
    # 2 layers, width 8, 2 heads of 4, MLP 8 -> 16 -> 8, vocabulary 10
    return GPT2Config(n_layer=2, n_embd=8, n_head=2, n_inner=16, vocab_size=10, bos_token_id=0, eos_token_id=0)


def test_gpt2_by_hand():
    # B=1, T=4 tokens. Per layer: Q,K,V 3 x (2*4*8*8) = 1536, output 512, MLP 2 x (2*4*8*16) = 2048.
    # Attention without prefix: (Q K^T) and (weights V), each 2*1*2 heads*4*4*4 = 256 -> 512.
    # LM head: 2*4*8*10 = 640.
    linear = 2 * (1536 + 512 + 2048) + 640  # 8832, every product with a weight matrix
    full = step_flops(tiny_gpt2(), 1, 4, method="full")
    assert full.forward == linear + 2 * 512
    assert full.backward_inputs == linear + 2 * (2 * 512)  # attention backward: both operands, 2x forward
    assert full.backward_weights == linear
    assert full.total == 29568
    # Prefix P=2: attention scores 4 x (2+4) keys: each product 2*2*4*6*4 = 384 -> 768 per layer.
    prefix = step_flops(tiny_gpt2(), 1, 4, method="prefix", prefix_length=2)
    assert prefix.forward == linear + 2 * 768
    # no weight gradients; no input gradient for layer 1's Q/K/V (1536); layer 1 needs no dQ (768 / 2)
    assert prefix.backward_weights == 0
    assert prefix.backward_inputs == (linear - 1536) + 2 * (2 * 768) - 384
    assert prefix.total == 20352
    assert prefix_full_limit(tiny_gpt2(), 1, 4, 2) == pytest.approx(20352 / 29568)


def test_lora_by_hand():
    # tiny GPT-2, B=1, T=4, r=2 on query and value (8 -> 8 each): 2*4*2*(8+8) = 256 per role, 2 roles,
    # 2 layers -> 1024 for the thin products. The rest is the prefix's step without a prefix.
    linear = 2 * (1536 + 512 + 2048) + 640
    lora = step_flops(tiny_gpt2(), 1, 4, method="lora", lora_rank=2, lora_on=("query", "value"))
    assert lora.parts["lora"] == 1024
    assert lora.forward == linear + 2 * 512 + 1024
    assert lora.backward_inputs == (linear - 1536) + 2 * (2 * 512) + 1024  # dx, but not under layer 1's Q/K/V
    assert lora.backward_weights == 1024  # dA and dB only
    assert method_full_limit(tiny_gpt2(), 1, 4, "lora", lora_rank=2) == pytest.approx(22272 / 29568)
    assert step_flops(tiny_gpt2(), 1, 4, method="lora", lora_rank=4).total > lora.total  # rank costs arithmetic
    with pytest.raises(ValueError, match="lora_on has 'gate'"):
        step_flops(tiny_gpt2(), 1, 4, method="lora", lora_on=("gate",))


def test_prompt_by_hand():
    # tiny GPT-2, B=1, T=4 real tokens + P=2 prompt vectors = 6 tokens through every product.
    # Per layer: Q,K,V 3 x (2*6*8*8) = 2304, output 768, MLP 2 x (2*6*8*16) = 3072; LM head 2*6*8*10 = 960.
    linear = 2 * (2304 + 768 + 3072) + 960
    attention = 2 * 2 * (2 * 1 * 2 * 6 * 6 * 4)  # 2 layers x (Q K^T and weights V) of 576
    prompt = step_flops(tiny_gpt2(), 1, 4, method="prompt", prompt_length=2)
    assert prompt.forward == linear + attention
    assert prompt.backward_inputs == linear + 2 * attention  # layer 1 too: the prompt is its input
    assert prompt.backward_weights == 0
    assert prompt.total == 33408  # more than full fine-tuning's 29568: at T = 4, P = 2 is 50% more tokens
    assert step_flops(tiny_gpt2(), 1, 4, method="prompt").total == step_flops(
        tiny_gpt2(), 1, 4, method="full").total - step_flops(tiny_gpt2(), 1, 4).backward_weights


def test_serving_costs_merged_lora_nothing_and_a_prompt_its_tokens():
    gpt2 = GPT2Config(n_layer=12, n_embd=768, n_head=12)
    assert serving_overhead(gpt2, 4, 128, "lora") == 1.0
    assert 1.0 < serving_overhead(gpt2, 4, 128, "lora", merged=False) < 1.02
    assert serving_overhead(gpt2, 4, 128, "prefix", prefix_length=10) == inference_overhead(gpt2, 4, 128, 10)
    assert serving_overhead(gpt2, 4, 128, "prompt", prompt_length=10) > serving_overhead(gpt2, 4, 128, "prefix",
                                                                                           prefix_length=10)
    minilm = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    prefix = prefix_full_limit(minilm, 32, 64, 10, lm_head=False)
    lora = method_full_limit(minilm, 32, 64, "lora", lm_head=False)
    prompt = method_full_limit(minilm, 32, 64, "prompt", prompt_length=10, lm_head=False)
    assert prefix < lora < prefix * 1.03 and prompt > 2 / 3


def test_llama_with_grouped_query_attention_by_hand():
    config = LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=12, vocab_size=10)
    # B=1, T=2. Q: 8 -> 8, K and V: 8 -> 4 each (1 kv head of 4): 2*2*8*(8+4+4) = 512; output 256;
    # MLP gate, up, down: 3 x (2*2*8*12) = 1152; LM head 2*2*8*10 = 320. Attention: 2 x (2*2*2*2*4) = 128.
    linear = 512 + 256 + 1152 + 320
    assert step_flops(config, 1, 2).total == (linear + 128) + (linear + 256) + linear
    # P=1: attention 2 x (2*2*2*3*4) = 192; layer 1 is the only layer: no Q/K/V input gradient, no dQ.
    prefix = step_flops(config, 1, 2, method="prefix", prefix_length=1)
    assert prefix.total == (linear + 192) + (linear - 512 + 2 * 192 - 96)


def test_classifier_has_no_lm_head_and_the_limit_is_near_two_thirds():
    minilm = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    assert step_flops(minilm, 32, 64, lm_head=False).parts["lm_head"] == 0
    limit = prefix_full_limit(minilm, 32, 64, 10, lm_head=False)
    assert 0.6 < limit < 2 / 3  # below 2/3: layer 1's Q/K/V input gradients are skipped too
    # Longer sequences make weight-free attention a bigger share: the limit rises towards 1.
    assert prefix_full_limit(minilm, 1, 512, 10, lm_head=False) > limit
    assert prefix_full_limit(minilm, 32, 64, 200, lm_head=False) > limit  # so do longer prefixes


def test_inference_overhead_is_only_the_prefix_columns():
    gpt2 = GPT2Config(n_layer=12, n_embd=768, n_head=12)
    assert inference_overhead(gpt2, 4, 128, 0) == 1.0
    small, large = inference_overhead(gpt2, 4, 128, 10), inference_overhead(gpt2, 4, 128, 200)
    assert 1.0 < small < 1.01 < large < 1.2


def test_reading_configs_and_explaining():
    dims = model_dims(LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                                  num_key_value_heads=3, intermediate_size=1536, vocab_size=49152))
    assert (dims.head_dim, dims.kv_heads, dims.mlp_matrices) == (64, 3, 3)
    assert model_dims(GPT2Config()).mlp_width == 4 * 768
    text = explain_limit(tiny_gpt2(), 1, 4, 2)
    assert "Limit: 0.688" in text and "weight gradients" in text
    with pytest.raises(ValueError, match="method"):
        step_flops(tiny_gpt2(), 1, 4, method="adapter")


def test_unknown_architectures_are_named():
    class T5Like:
        model_type = "t5"
        num_attention_heads, hidden_size = 8, 512

    with pytest.raises(ValueError, match="model_type='t5'"):
        model_dims(T5Like())
