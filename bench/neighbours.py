"""LoRA and prompt tuning against full fine-tuning and against PEFT, one training step each, same model and batch.

    .venv/bin/python bench/neighbours.py --quick

For each model: the step time of full fine-tuning, our LoRA (rank 8 on the query and value), PEFT's
LoRA with the same layers, our prompt tuning (P = 10) and PEFT's, interleaved (medians of several
repetitions). Beside each measured ratio (method step / full step) stands the FLOP-count limit
(:func:`tutorlib.training.flops.method_full_limit`), and beside our step PEFT's (ours / PEFT's: 1.0 =
as fast). Inference: forward time of merged LoRA, unmerged LoRA and the prompt, each over the plain
model's, beside :func:`tutorlib.training.flops.serving_overhead`. Written: bench/results/neighbours.json.
"""

from __future__ import annotations

import common
from common import say

from tutorlib.loading.architectures import architecture_of
from tutorlib.loading.models import head_of, pretrained_part
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.lora import attach_lora
from tutorlib.methods.prompt import attach_prompt
from tutorlib.training.flops import method_full_limit, serving_overhead

QUICK = [("minilm-l6", 16, 64), ("gpt2-small", 2, 128)]
FULL = [("minilm-l6", 32, 64), ("smollm2-135m", 4, 256), ("gpt2-small", 8, 128)]
PROMPT_LENGTH, RANK = 10, 8
LORA_ROLES = {"gpt2": ("query", "key", "value")}  # GPT-2's fused c_attn; the others adapt query and value


def peft_models(name: str):
    """PEFT's LoRA and prompt tuning on fresh copies of the model (None, None when PEFT is missing)."""
    try:
        import peft
    except ImportError:
        return None, None
    lora_base, prompt_base = common.load(name), common.load(name)
    family = architecture_of(pretrained_part(lora_base).config)
    lora_config = peft.LoraConfig(r=RANK, lora_alpha=RANK, target_modules=list(family.lora_targets),
                                  fan_in_fan_out=family.name == "gpt2")
    lora = peft.get_peft_model(lora_base, lora_config)
    prompt_config = peft.PromptTuningConfig(num_virtual_tokens=PROMPT_LENGTH, task_type=(
        "CAUSAL_LM" if head_of(prompt_base) == "causal-lm" else "FEATURE_EXTRACTION"))
    # A classifier: PEFT tunes its encoder (the pooled head is ours); the step then times the encoder alone.
    prompt = peft.get_peft_model(pretrained_part(prompt_base), prompt_config)
    return lora, prompt


def compare_methods(name: str, batch_size: int, seq_len: int, repeats: int, device) -> dict:
    full = prepare_full_finetuning(common.load(name))
    lora = attach_lora(common.load(name), rank=RANK)
    prompt = attach_prompt(common.load(name), PROMPT_LENGTH)
    batch = common.batch_for(full.model, batch_size, seq_len)
    steps = {"full": common.TimedStep(full, batch, device=device), "lora": common.TimedStep(lora, batch, device=device),
             "prompt": common.TimedStep(prompt, batch, device=device)}
    peft_lora, peft_prompt = peft_models(name)
    if peft_lora is not None:
        steps["peft-lora"] = common.TimedStep(peft_lora, batch, device=device)
        if head_of(full.model) == "causal-lm":  # PEFT's prompt tuning of our classifier is not one model
            steps["peft-prompt"] = common.TimedStep(peft_prompt, batch, device=device)
    timed = common.interleaved(steps, repeats=repeats, warmup=1)
    config = pretrained_part(full.model).config
    lm_head = head_of(full.model) == "causal-lm"
    roles = LORA_ROLES.get(config.model_type, ("query", "value"))
    limits = {"lora": method_full_limit(config, batch_size, seq_len, "lora", lora_rank=RANK, lora_on=roles,
                                        lm_head=lm_head),
              "prompt": method_full_limit(config, batch_size, seq_len, "prompt", prompt_length=PROMPT_LENGTH,
                                          lm_head=lm_head)}
    row = {"model": name, "batch": f"{batch_size}x{seq_len}", "rank": RANK, "prompt_length": PROMPT_LENGTH,
           "step_s": {m: t["step_s"] for m, t in timed.items()}, "flop_limit": limits}
    row["step_ratio"] = {m: common.ratio(timed[m]["step_s"], timed["full"]["step_s"]) for m in timed if m != "full"}
    row["ours_over_peft"] = {m: common.ratio(timed[m]["step_s"], timed[f"peft-{m}"]["step_s"])
                             for m in ("lora", "prompt") if f"peft-{m}" in timed}
    row["inference"] = inference(name, full, lora, prompt, batch, repeats, device, config, lm_head, roles)
    return row


def inference(name, full, lora, prompt, batch, repeats, device, config, lm_head, roles) -> dict:
    """Forward time (no gradients) over the plain model's: merged LoRA, unmerged LoRA, the prompt."""
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    for model in (full, lora, prompt):
        model.eval().to(device)
    merged = attach_lora(common.load(name), rank=RANK).eval().to(device).merge()
    timed = common.interleaved({"plain": common.TimedForward(lambda: full(**inputs), device),
                                "lora-merged": common.TimedForward(lambda: merged(**inputs), device),
                                "lora-unmerged": common.TimedForward(lambda: lora(**inputs), device),
                                "prompt": common.TimedForward(lambda: prompt(**inputs), device)}, repeats=repeats)
    B, T = inputs["input_ids"].shape
    return {m: {"ratio": common.ratio(timed[m]["step_s"], timed["plain"]["step_s"]),
                "flop_ratio": serving_overhead(config, B, T, m.split("-")[0], merged=m == "lora-merged",
                                               lm_head=lm_head,
                                               **({"prompt_length": PROMPT_LENGTH} if m == "prompt" else
                                                  {"lora_rank": RANK, "lora_on": roles}))}
            for m in ("lora-merged", "lora-unmerged", "prompt")}


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__)
    device = common.device_of(args.device)
    shapes = QUICK if args.quick else FULL
    rows = [compare_methods(name, b, t, 3 if args.quick else 7, device) for name, b, t in shapes]
    for r in rows:
        say(f"{r['model']} {r['batch']}: step / full " + ", ".join(f"{m} {v:.3f}" for m, v in r["step_ratio"].items())
            + " | FLOP limit " + ", ".join(f"{m} {v:.3f}" for m, v in r["flop_limit"].items())
            + " | ours / PEFT " + ", ".join(f"{m} {v:.3f}" for m, v in r["ours_over_peft"].items())
            + " | inference / plain " + ", ".join(f"{m} {v['ratio']:.3f} (FLOPs {v['flop_ratio']:.3f})"
                                                  for m, v in r["inference"].items()))
    common.save("neighbours", {"quick": args.quick, "rows": rows})
    return {"rows": rows}


if __name__ == "__main__":
    main()
