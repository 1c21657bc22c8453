"""head-only (a linear probe): only the new head trains, it saves and reloads, and compare shows it."""


import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.head_only import HeadOnlyModel, prepare_head_only
from tutorlib.methods.registry import get_method, load_checkpoint
from tutorlib.training.loop import TrainConfig, train
from tutorlib.training.parameters import parameter_summary


def batches(tok, n=4):
    texts = ["a great film", "dull and flat", "warm, funny", "boring"] * n
    enc = tok(texts[:8], return_tensors="pt", padding=True)
    return [{**enc, "labels": torch.tensor([1, 0, 1, 0, 1, 0, 1, 0])}]


def test_only_the_head_trains_and_the_encoder_keeps_its_weights():
    model, tok = load_model("tiny-bert")
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head.weight.detach().clone()
    tuned = prepare_head_only(model)
    summary = parameter_summary(tuned)
    assert summary.trainable == summary.stored == 64 * 2 + 2  # hidden x labels + bias
    train(tuned, batches(tok), TrainConfig(steps=3, lr=1e-2, seed=0), progress=False)
    assert not torch.equal(model.head.weight, head_before)
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder_before.items())
    tuned.train()
    assert tuned.model.head.training and not tuned.model.encoder.training  # fixed features: no dropout inside


def test_checkpoint_round_trip_through_the_registry(tmp_path):
    model, tok = load_model("tiny-bert", seed=1)
    tuned = prepare_head_only(model)
    train(tuned, batches(tok), TrainConfig(steps=2, lr=1e-2, seed=0), progress=False)
    paths = tuned.save_checkpoint(tmp_path)
    assert sorted(p.name for p in paths) == ["head.safetensors", "tutorlib_checkpoint.json"]
    loaded = load_checkpoint(tmp_path, load_model("tiny-bert", seed=1)[0])  # same frozen base, head from the file
    assert isinstance(loaded, HeadOnlyModel)
    batch = batches(tok)[0]
    tuned.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["input_ids"], batch["attention_mask"]).logits,
                                   tuned(batch["input_ids"], batch["attention_mask"]).logits)


def test_mistakes_get_clear_errors():
    lm, _ = load_model("tiny-gpt2")
    with pytest.raises(ValueError, match="head='classification'"):
        prepare_head_only(lm)
    classifier, _ = load_model("tiny-bert")
    with pytest.raises(ValueError, match="already wrapped"):
        prepare_head_only(prepare_head_only(classifier))
    assert not get_method("head-only").fits("causal-lm")


def test_compare_shows_head_only_beside_full_and_prefix(tmp_path, capsys, monkeypatch):
    """What `tutorlib compare --task sentiment --fast --methods full,prefix,head-only` does, on tiny-bert."""
    from test_compare import tiny_sentiment

    import tutorlib.experiments.compare as cmp
    from tutorlib.cli import main

    real = cmp.compare
    monkeypatch.setattr(cmp, "compare", lambda spec, **kw: real(spec, **{**kw, "tiny_data": tiny_sentiment(),
                                                                         "progress": False, "measure_energy": False}))
    assert main(["compare", "--task", "sentiment", "--model", "tiny-bert", "--methods", "full,prefix,head-only",
                 "--steps", "2", "--prefix-length", "4", "--fast", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    quality = out.split("Quality")[1].split("Paired tests")[0]
    assert [line.split()[0] for line in quality.strip().splitlines()[2:5]] == ["full", "prefix", "head-only"]
    assert "head-only 0.003" in out and "head-only vs prefix" not in out and "prefix vs head-only" in out
    saved = (tmp_path / "cli" / "head-only")
    assert (saved / "head.safetensors").is_file()


def test_head_only_does_not_fit_summarisation():
    from tutorlib.experiments.compare import compare

    with pytest.raises(ValueError, match="does not fit the summarise task"):
        compare("summarise", model="tiny-gpt2", methods="head-only", mode="fast", progress=False)
