"""LoRA: only A and B train, it starts at the pretrained model, merging changes no logit, the checkpoint
holds A and B alone, and the comparison shows it beside the other methods without any change of its own."""


import pytest
import torch
from safetensors.torch import load_file, save_file

from tutorlib.loading.architectures import sizes_of
from tutorlib.loading.models import load_model, pretrained_part
from tutorlib.methods.lora import LoRAError, LoRATunedModel, attach_lora
from tutorlib.methods.registry import get_method, load_checkpoint
from tutorlib.training.loop import TrainConfig, train
from tutorlib.training.parameters import parameter_summary

FAMILIES = ["tiny-gpt2", "tiny-bert", "tiny-llama"]


def batch_of(name, tok):
    batch = tok(["a great film", "dull", "warm, funny and long"], return_tensors="pt", padding=True)
    if name == "tiny-bert":
        return {**batch, "labels": torch.tensor([1, 0, 1])}
    return {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}


def trained(name, steps=3, **lora):
    """A LoRA model of a tiny family after a few steps at a high rate, so that B is far from zero."""
    model, tok = load_model(name)
    tuned = attach_lora(model, **lora)
    batch = batch_of(name, tok)
    train(tuned, [batch], TrainConfig(steps=steps, lr=5e-2, warmup=0, seed=0), progress=False)
    return tuned.eval(), tok, batch


@pytest.mark.parametrize("name", FAMILIES)
def test_starts_at_the_pretrained_model_and_only_A_and_B_train(name):
    plain, tok = load_model(name)
    model, _ = load_model(name)
    tuned = attach_lora(model, rank=4).eval()
    batch = batch_of(name, tok)
    with torch.no_grad():  # B = 0: the very same outputs as the model without LoRA
        torch.testing.assert_close(tuned(**batch).logits, plain(**batch).logits, atol=0, rtol=0)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    low_rank = [n for n in trainable if n.endswith((".lora_A", ".lora_B"))]
    head = {"model.head.weight", "model.head.bias"} if name == "tiny-bert" else set()
    assert set(trainable) - set(low_rank) == head
    # the formula by hand: every adapted layer adds r x (in + out); the defaults are query and value
    sizes = sizes_of(pretrained_part(model).config)
    q, kv = sizes.heads * sizes.head_dim, sizes.kv_heads * sizes.head_dim
    per_layer = 4 * (sizes.hidden + q + 2 * kv) if name == "tiny-gpt2" else 4 * (2 * sizes.hidden + q + kv)
    head = 64 * 2 + 2 if name == "tiny-bert" else 0
    assert parameter_summary(tuned).trainable == sizes.layers * per_layer + head
    assert len(low_rank) == 2 * len(tuned.lora_layers())


@pytest.mark.parametrize("name", FAMILIES)
def test_merged_gives_the_same_logits_and_unmerge_gives_W_back(name):
    tuned, tok, batch = trained(name, rank=4, alpha=16)
    layers = tuned.lora_layers()
    assert all(torch.count_nonzero(layer.lora_B) > 0 for layer in layers.values())
    frozen = {path: layer.base.weight.detach().clone() for path, layer in layers.items()}
    with torch.no_grad():
        unmerged = tuned(**batch).logits
        tuned.merge()
        assert tuned.merged
        for layer in layers.values():  # the low-rank path is no longer computed: poison it to prove it
            layer.lora_A.data = torch.full_like(layer.lora_A, float("nan"))
        merged = tuned(**batch).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert (merged - load_model(name)[0](**{k: v for k, v in batch.items() if k != "labels"}).logits).abs().max() > 1e-3
    tuned, tok, batch = trained(name, rank=4, alpha=16)
    layers = tuned.lora_layers()
    frozen = {path: layer.base.weight.detach().clone() for path, layer in layers.items()}
    tuned.merge()
    assert any((layer.base.weight - frozen[p]).abs().max() > 1e-4 for p, layer in layers.items())
    tuned.unmerge()
    assert not tuned.merged
    for path, layer in layers.items():
        torch.testing.assert_close(layer.base.weight, frozen[path], atol=1e-6, rtol=0)


def test_merged_generation_is_the_same_text():
    tuned, tok, batch = trained("tiny-llama", rank=4, alpha=16)
    prompts = tok(["the cat", "a dog sat"], return_tensors="pt", padding=True, padding_side="left")
    settings = dict(max_new_tokens=6, do_sample=False)
    unmerged = tuned.generate(**prompts, **settings)
    merged = tuned.merge().generate(**prompts, **settings)
    assert torch.equal(merged, unmerged) and merged.shape[1] == prompts["input_ids"].shape[1] + 6


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2"])
def test_checkpoint_is_A_and_B_alone_and_round_trips_through_the_registry(name, tmp_path):
    tuned, tok, batch = trained(name, rank=2, targets=("query", "key", "value") if name == "tiny-bert" else None)
    paths = tuned.save_checkpoint(tmp_path)
    assert sorted(p.name for p in paths) == ["lora.safetensors", "tutorlib_checkpoint.json"]
    stored = load_file(str(tmp_path / "lora.safetensors"))
    assert all(k.endswith((".lora_A", ".lora_B")) or k.startswith("head.") for k in stored)
    summary = parameter_summary(tuned)
    assert sum(v.numel() for v in stored.values()) == summary.stored == summary.trainable
    loaded = load_checkpoint(tmp_path, load_model(name)[0])  # a fresh frozen base + the file
    assert isinstance(loaded, LoRATunedModel) and loaded.targets == tuned.targets and loaded.rank == 2
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, tuned(**batch).logits)
    with pytest.raises(LoRAError, match="trained on"):  # another family's model does not take it
        LoRATunedModel.load_checkpoint(tmp_path, load_model("tiny-llama" if name == "tiny-gpt2" else "tiny-bert",
                                                            seed=0, num_labels=3)[0])
    one_layer_less = {k: v for k, v in stored.items() if "layer.1." not in k and ".h.1." not in k}
    save_file(one_layer_less, str(tmp_path / "lora.safetensors"))
    with pytest.raises(LoRAError, match=r"lacks '.*\.1\..*lora_A', which this model has .* trained on " + name):
        load_checkpoint(tmp_path, load_model(name)[0])  # a checkpoint with one layer's update missing


def test_mistakes_get_clear_errors():
    model, _ = load_model("tiny-llama")
    with pytest.raises(LoRAError, match="No linear layer named 'query'.*q_proj"):
        attach_lora(model, targets=("query",))
    with pytest.raises(LoRAError, match="rank must be a whole number"):
        attach_lora(model, rank=0)
    with pytest.raises(LoRAError, match="alpha must be > 0"):
        attach_lora(model, alpha=-1.0)
    with pytest.raises(LoRAError, match="already wrapped"):
        attach_lora(attach_lora(model))
    from transformers import OPTConfig, OPTForCausalLM

    opt = OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                   num_attention_heads=2, word_embed_proj_dim=16))
    with pytest.raises(LoRAError, match="(?s)No default LoRA targets for model family 'opt'.*gpt2.*bert.*llama"):
        attach_lora(opt)  # a family without a record: the learner names its layers
    assert len(attach_lora(opt, targets=("q_proj", "v_proj"), model_name="opt").lora_layers()) == 2
    classifier, _ = load_model("tiny-bert")
    with pytest.raises(ValueError, match="causal language model"):
        attach_lora(classifier).generate(torch.ones(1, 3, dtype=torch.long))
    assert get_method("lora").fits("classification") and get_method("lora").fits("causal-lm")


def test_compare_shows_all_five_methods_without_a_change_of_its_own(tmp_path, capsys, monkeypatch):
    """What `tutorlib compare --task sentiment --fast --methods full,prefix,lora,prompt,head-only` does, on
    tiny-bert."""
    from test_compare import tiny_sentiment

    import tutorlib.experiments.compare as cmp
    from tutorlib.cli import main

    real = cmp.compare
    monkeypatch.setattr(cmp, "compare", lambda spec, **kw: real(spec, **{**kw, "tiny_data": tiny_sentiment(),
                                                                         "progress": False, "measure_energy": False}))
    methods = ["full", "prefix", "lora", "prompt", "head-only"]
    assert main(["compare", "--task", "sentiment", "--model", "tiny-bert", "--methods", ",".join(methods),
                 "--steps", "2", "--prefix-length", "4", "--mode", "fast", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    quality = out.split("Quality")[1].split("Paired tests")[0]
    assert [line.split()[0] for line in quality.strip().splitlines()[2:7]] == methods
    for method, file in [("lora", "lora.safetensors"), ("prompt", "prompt.safetensors")]:
        assert f"{method} {get_method(method).learning_rate:g}" in out  # each method's registered rate
        assert (tmp_path / "cli" / method / file).is_file()
        assert load_checkpoint(tmp_path / "cli" / method).method == method
