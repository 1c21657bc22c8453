"""The source text's claims and their verdicts, computed from the stored results: one file, every page.

    python -m tutorlib.experiments.claims            # writes results/claims.json from results/*
    python -m tutorlib.experiments.claims --render   # also rewrites every claims block in the markdown

Every verdict on a claim (the README's claim table, lesson 1's map, lesson 8's section 12) is a sentence
built here from the stored runs, saved in ``results/claims.json``, and rendered into the pages between two
HTML comments (invisible when rendered)::

    <!-- claims:table -->   ...   <!-- /claims -->     README.md or docs/*.md: claim | verdict | where | command
    <!-- claims:map -->     ...   <!-- /claims -->     lesson 8, section 12: claim | verdict | where
    <!-- claims:short -->   ...   <!-- /claims -->     lesson 1: claim | verdict in a few words | where

``tests/test_claims_drift.py`` checks that the JSON equals what the stored results give and that every
block equals its rendering, so no page can say something the others do not.

How the words are chosen (one rule for every claim):

* a *difference* ("fine-tuning wins") needs a paired test with a small p-value and an interval that
  excludes 0, with the noise that interval covers named (test items, training seeds or data splits);
* a *sameness* ("prefix tuning suffices", "keeps up") needs an equivalence test: two one-sided tests
  (:func:`tutorlib.tasks.metrics.paired_equivalence`) at the margin :data:`EQUIVALENCE_FRACTION` sets
  *before* the full-minus-prefix difference is looked at. A large p-value alone is "no difference
  detected"; when equivalence fails too the verdict says "no difference detected; not shown equivalent".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from tutorlib.experiments.results import ComparisonResult
from tutorlib.experiments.time_to_target import accuracy_targets_table, loss_targets_table, smoothed_curve
from tutorlib.files import write_atomic
from tutorlib.tasks.metrics import format_p, mcnemar, paired_equivalence, sign_flip_test
from tutorlib.training.prefix_sizes import prefix_size_table

COMMAND = "python -m tutorlib.experiments.claims"

# The equivalence margin, fixed before the full-minus-prefix differences were computed: a fifth of what
# full fine-tuning gains over zero-shot on the same measure and items. Why: "the prefix keeps up" should
# mean it keeps at least four fifths of what training buys at all; the margin comes from zero-shot and
# full alone (never from the prefix's score), and it scales with how much the task can be learned
# (a 0.01 ROUGE-L gap matters when training adds 0.05, not when it adds 0.17).
EQUIVALENCE_FRACTION = 0.2
ALPHA = 0.05  # each one-sided test's level: equivalent when the 90% interval lies inside the margin

# The stored comparisons every cost and iteration claim reads (all of them, never a chosen subset).
COMPARISONS = {"sentiment": "results/sentiment", "news": "results/summarise-nyt-leads",
               "technical": "results/summarise-aclsum", "biochemistry": "results/summarise-pubmed-biochem"}
SUMMARISATION = ("news", "technical", "biochemistry")
BLOCK = re.compile(r"(?P<open><!-- claims:(?P<kind>[a-z]+) -->\n)(?P<body>.*?)(?P<close><!-- /claims -->)", re.S)


# ----------------------------------------------------------------------------- numbers as text


def _n(x: float, decimals: int = 3) -> str:
    return f"{x:.{decimals}f}"


def _signed(x: float, decimals: int = 3) -> str:
    return f"{x:+.{decimals}f}"


def _interval(low: float, high: float, decimals: int = 3, scale: float = 1.0) -> str:
    return f"[{low * scale:+.{decimals}f}, {high * scale:+.{decimals}f}]"


def _range(values, decimals: int = 2, suffix: str = "") -> str:
    low, high = f"{min(values):.{decimals}f}", f"{max(values):.{decimals}f}"
    return f"{low}{suffix}" if low == high else f"{low}-{high}{suffix}"


# ----------------------------------------------------------------------------- the evidence


def _per_item(root: Path, folder: str, method: str, measure: str) -> dict[str, float]:
    predictions = _load(root, f"{folder}/predictions.json")[method]
    return {p["id"]: p[measure] for p in predictions if p.get(measure) is not None}


def summarisation_evidence(root: Path, folder: str, measure: str = "rougeL") -> dict:
    """Full minus prefix on one measure, item by item: the difference test, the interval, the equivalence test.

    The margin is :data:`EQUIVALENCE_FRACTION` of full minus zero-shot on the same items."""
    zero, full, prefix = (_per_item(root, folder, m, measure) for m in ("zero-shot", "full", "prefix"))
    ids = [i for i in full if i in prefix and i in zero]  # items all three were scored on
    z, f, p = (np.array([d[i] for i in ids]) for d in (zero, full, prefix))  # (N,) each
    gain = float(f.mean() - z.mean())
    margin = EQUIVALENCE_FRACTION * abs(gain)
    difference = sign_flip_test(f, p)
    equivalence = paired_equivalence(f, p, margin, ALPHA)
    return {"measure": measure, "items": len(ids), "zero_shot": float(z.mean()), "full": float(f.mean()),
            "prefix": float(p.mean()), "gain_over_zero_shot": gain, "margin": margin,
            "difference": float(f.mean() - p.mean()), "ci95_test_items": list(equivalence["ci95"]),
            "sign_flip": difference, "sign_flip_text": format_p(difference),
            "tost_p": equivalence["p_value"], "equivalent": bool(equivalence["equivalent"]),
            "full_vs_zero_shot": format_p(sign_flip_test(f, z)), "prefix_vs_zero_shot": format_p(sign_flip_test(p, z))}


def cost_evidence(root: Path) -> dict:
    """Prefix-to-full ratios of every stored comparison: step, train time, energy, checkpoint, memory."""
    out = {}
    for name, folder in COMPARISONS.items():
        rows = {r["method"]: r for r in _load(root, f"{folder}/results.json")["rows"]}
        full, prefix = rows["full"], rows["prefix"]
        out[name] = {"step": prefix["median_step_seconds"] / full["median_step_seconds"],
                     "train_time": prefix["train_seconds"] / full["train_seconds"],
                     "energy": prefix["energy_kwh"] / full["energy_kwh"],
                     "checkpoint": prefix["checkpoint_bytes"] / full["checkpoint_bytes"],
                     "trainable_fraction": prefix["trainable_fraction"],
                     "memory_saving": 1 - prefix["peak_memory_increase_mb"] / full["peak_memory_increase_mb"]}
    return out


def iteration_evidence(root: Path) -> dict:
    """Seconds each method needs to bring its smoothed training loss to the prefix's final one, per run."""
    out = {}
    for name, folder in COMPARISONS.items():
        result = ComparisonResult.load(root / folder)
        prefix = result.histories["prefix"]
        target = round(float(smoothed_curve(prefix.seconds, prefix.loss)[1][-1]), 3)  # the prefix's end point
        seconds = {r["method"]: r["seconds"] for r in loss_targets_table(result, targets=[target])}
        out[name] = {"target_loss": target, "full_seconds": seconds["full"], "prefix_seconds": seconds["prefix"],
                     "prefix_first": seconds["full"] is None or seconds["prefix"] < seconds["full"]}
    return out


def sentiment_evidence(root: Path) -> dict:
    """McNemar on the clear and the ambiguous items alone: the single run, and each training seed's run.

    Item-level tests: they say whether one run's gap could be luck in the choice of test items, which the
    intervals over seeds (training noise on one fixed test set) do not cover."""
    predictions = _load(root, f"{COMPARISONS['sentiment']}/predictions.json")
    full, prefix = predictions["full"], predictions["prefix"]
    single = {}
    for part, ambiguous in (("clear", False), ("ambiguous", True)):
        keep = [i for i, p in enumerate(full) if p["is_ambiguous"] == ambiguous]
        single[part] = mcnemar([full[i]["pred"] for i in keep], [prefix[i]["pred"] for i in keep],
                               [full[i]["label"] for i in keep])
    summary = _load(root, "results/sentiment-seeds/summary.json")
    rates = summary["learning_rates"]
    per_seed = {"clear": [], "ambiguous": []}
    for seed in summary["seeds"]:
        runs = {m: _load(root, f"results/sentiment-runs/{m}-lr{rates[m]}-seed{seed}-split0.json")["sets"]["test"]
                for m in ("full", "prefix")}
        if runs["full"]["ids"] != runs["prefix"]["ids"]:
            raise ValueError(f"seed {seed}: the two methods' test items differ; re-run `tutorlib seeds`.")
        for part, ambiguous in (("clear", False), ("ambiguous", True)):
            keep = [i for i, a in enumerate(runs["full"]["is_ambiguous"]) if a == ambiguous]
            per_seed[part].append(mcnemar([runs["full"]["right"][i] for i in keep],
                                          [runs["prefix"]["right"][i] for i in keep], [1] * len(keep)))
    return {"single_run_mcnemar": single, "per_seed_mcnemar": per_seed, "seeds": summary["seeds"]}


def _load(root: Path, file: str) -> dict:
    path = root / file
    if not path.is_file():
        raise FileNotFoundError(f"{file} is missing: the claims are computed from the stored results; make it with "
                                f"the command in the README's Results section, then run `{COMMAND}` again.")
    return json.loads(path.read_text())


def _equivalence_words(e: dict) -> str:
    """The verdict on "the same" for one measure: shown equivalent, or only no difference detected."""
    test = f"within +-{_n(e['margin'])} (TOST p = {e['tost_p']:.2g})"
    return f"shown equivalent {test}" if e["equivalent"] else f"no difference detected; not shown equivalent {test}"


def _difference(e: dict, name: str) -> str:
    return (f"{name} {_signed(e['difference'])}, 95% interval over test items "
            f"{_interval(*e['ci95_test_items'])}, sign-flip {e['sign_flip_text']}")


def build_claims(root: Path | str = ".") -> dict:
    """Every claim with its verdict, computed from the stored results under ``root`` (the repository)."""
    root = Path(root)
    for folder in COMPARISONS.values():
        _load(root, f"{folder}/results.json")
    news = summarisation_evidence(root, COMPARISONS["news"])
    technical = summarisation_evidence(root, COMPARISONS["technical"])
    bio = summarisation_evidence(root, COMPARISONS["biochemistry"])
    bio_terms = summarisation_evidence(root, COMPARISONS["biochemistry"], "term_recall")
    costs = cost_evidence(root)
    iteration = iteration_evidence(root)
    seeds = _load(root, "results/sentiment-seeds/summary.json")
    sentiment = sentiment_evidence(root)
    inference = _load(root, "results/inference/inference.json")
    refresh = _load(root, "results/refresh-sentiment/refresh.json")
    sizes = prefix_size_table((1, 10))

    # ---- "a few thousand"
    at_10 = [r for r in sizes if r["prefix_length"] == 10]
    minilm_1 = next(r for r in sizes if r["model"].startswith("MiniLM") and r["prefix_length"] == 1)
    smallest, largest = min(at_10, key=lambda r: r["prefix_params"]), max(at_10, key=lambda r: r["prefix_params"])
    few = (f"the fraction is tiny ({costs['sentiment']['trainable_fraction']:.2%} MiniLM, "
           f"{costs['news']['trainable_fraction']:.3%} SmolLM2 at P=10), but \"a few thousand\" holds only for "
           f"MiniLM-L6 at P=1 ({minilm_1['prefix_params']:,}); at P=10 a prefix is {smallest['prefix_params']:,} "
           f"(MiniLM) to {largest['prefix_params']:,} (Llama-2-7B) parameters, "
           f"{smallest['times_few_thousand']:.0f}-{largest['times_few_thousand']:.0f}x \"a few thousand\" (5,000)")

    # ---- costs, over every stored comparison
    ratio = {k: [c[k] for c in costs.values()] for k in ("step", "train_time", "energy", "checkpoint", "memory_saving")}
    cost = (f"holds over all {len(costs)} stored comparisons: step {_range(ratio['step'])}x, train time "
            f"{_range(ratio['train_time'])}x, checkpoint {_range([100 * c for c in ratio['checkpoint']], 2, '%')}; "
            f"memory only {_range([100 * m for m in ratio['memory_saving']], 0, '%')} less (activations are kept); "
            f"energy {_range(ratio['energy'])}x, which repeats the time ratio (codecarbon's estimate is time x a "
            f"near-fixed power, not a meter: not independent evidence)")

    # ---- deployment on a small device
    mini, smol = inference["inference"][0], inference["inference"][1]
    memory = [w["with prefix"]["pass_memory_mb"] - w["without prefix"]["pass_memory_mb"] for w in (mini, smol)]
    serve = inference["serving"]
    s_mini, s_smol = serve["minilm-l6"], serve["smollm2-135m"]

    def full_mb(rows):  # measured where it was, else the formula (N x the model)
        return " / ".join(f"{(r['full_measured_mb'] if r['full_measured'] else r['full_formula_mb']):,.0f}"
                          for r in rows)

    def prefix_mb(rows):
        return " / ".join(f"{r['prefix_measured_mb']:,.0f}" for r in rows)

    device = (f"not at inference: a prefix needs the whole model (MiniLM {mini['weight_bytes']:,} bytes, SmolLM2 "
              f"{smol['weight_bytes']:,} bytes fp32) plus its prefix; one forward pass with a prefix took "
              f"{mini['latency_ratio']:.2f}x (MiniLM) and {smol['latency_ratio']:.2f}x (SmolLM2) the time of one "
              f"without, and its memory was {abs(memory[0]):.1f} and {abs(memory[1]):.1f} MiB "
              f"{'lower' if max(memory) < 0 else 'different'}: noise on a loaded CPU (a prefix adds work by "
              f"construction). Serving N tasks: N fine-tuned MiniLM copies {full_mb(s_mini)} MiB for N = "
              f"{' / '.join(str(r['tasks']) for r in s_mini)} (measured up to N = "
              f"{max(r['tasks'] for r in s_mini if r['full_measured'])}, then the formula) vs one model + N prefixes "
              f"{prefix_mb(s_mini)} MiB (measured); SmolLM2 "
              f"{full_mb(s_smol)} MiB (formula beyond N = 1) vs "
              f"{prefix_mb(s_smol)} MiB. GPU not measured")

    # ---- frequent updates
    ups = refresh["updates"]
    by = {m: [u for u in ups if u["method"] == m] for m in ("full", "prefix")}
    ms = {m: [1000 * u["swap_seconds"] for u in by[m]] for m in by}
    train = {m: [u["train_seconds"] for u in by[m]] for m in by}
    last = {m: by[m][-1]["accuracy"] for m in by}
    settings = refresh["settings"]
    frequent = (f"holds for shipping and swapping: per update {by['prefix'][0]['ship_bytes']:,} bytes vs "
                f"{by['full'][0]['ship_bytes']:,}, swap {_range(ms['prefix'], 1)} ms vs {_range(ms['full'], 0)} ms, "
                f"training {_range(train['prefix'], 0)} s vs {_range(train['full'], 0)} s (loaded, 1 thread); after "
                f"{settings['updates']} refreshes of {settings['examples_per_update']} examples accuracy "
                f"{last['prefix']:.3f} prefix vs {last['full']:.3f} full on {settings['test_items']} test items "
                f"(one run: no difference shown)")

    # ---- rapid iteration, every stored run
    slower = [k for k, v in iteration.items() if not v["prefix_first"]]
    faster = [k for k, v in iteration.items() if v["prefix_first"]]

    def times(keys):
        return "; ".join(f"{k} {iteration[k]['full_seconds']:.0f} s vs {iteration[k]['prefix_seconds']:.0f} s"
                         for k in keys)

    reached = {(r["method"], r["target_accuracy"]): r["seconds"]
               for r in accuracy_targets_table(refresh, [0.6, 0.65, 0.7])}
    sooner = all(reached[("prefix", t)] is not None and (reached[("full", t)] is None
                                                         or reached[("prefix", t)] < reached[("full", t)])
                 for t in (0.6, 0.65, 0.7))  # the prefix got there, and first (or full never did)
    rapid = (f"mixed: full fine-tuning reaches the prefix's final smoothed training loss sooner in {len(slower)} of "
             f"{len(iteration)} stored runs (full vs prefix: {times(slower)})"
             + (f", the prefix sooner in {len(faster)} ({times(faster)}); so not supported as a rule" if faster else "")
             + f". Test accuracy after the refreshes of the row above reached 0.60 / 0.65 / 0.70 "
             f"{'sooner with the prefix' if sooner else 'not always sooner with the prefix'} (one run, "
             f"{settings['test_items']} items: suggestive only). Deployment (bytes, swap) is faster with a prefix "
             f"(row above)")

    # ---- nuanced text, over training seeds
    across, splits = seeds["across_seeds"], seeds["across_split_seeds"]
    n_seeds = len(seeds["seeds"])

    def pts(key, where=across):
        return f"{100 * where[key]['mean']:+.1f}"

    def ci(key):
        return _interval(*across[key]["ci95"], decimals=1, scale=100)

    nuanced = (f"partly; did not survive seeds: over {n_seeds} training seeds at tuned rates (95% intervals over "
               f"training seeds, one test set) it wins on ambiguous items ({pts('gap_ambiguous')} points "
               f"{ci('gap_ambiguous')}, an interval that includes 0) as it wins overall ({pts('gap_all')} "
               f"{ci('gap_all')}) and on clear items ({pts('gap_clear')} {ci('gap_clear')}), but its advantage is not "
               f"measurably larger on ambiguous text (ambiguous minus clear {pts('gap_difference')} "
               f"{ci('gap_difference')}; {pts('gap_difference', splits)} across data splits). "
               "The clear-item interval covers training noise only: no "
               f"seed's clear-item McNemar test over test items is significant (p = "
               f"{', '.join(f'{p:.3f}' for p in sentiment['per_seed_mcnemar']['clear'])}). The single-run +7.7 vs "
               f"+2.1 did not survive seeds")

    # ---- summarisation: the same, or not?
    suffices = (f"not shown: on news ({_difference(news, 'ROUGE-L full minus prefix')}) "
                f"{_equivalence_words(news)}, the margin a fifth of fine-tuning's gain over zero-shot "
                f"({_n(news['gain_over_zero_shot'])}); the interval reaches the {_signed(technical['difference'])} "
                f"that is a clear win on ACL abstracts")
    specialised = (f"holds on ACL abstracts ({_difference(technical, 'ROUGE-L')}), with a per-aspect caveat "
                   f"(lesson 7: full's lead comes from one aspect); does **not** hold on biochemistry "
                   f"(`pubmed-biochem`): ROUGE-L {_n(bio['full'])} vs "
                   f"{_n(bio['prefix'])} ({_difference(bio, 'difference')}), {_equivalence_words(bio)}; terminology "
                   f"recall full {_n(bio_terms['full'])} vs prefix {_n(bio_terms['prefix'])} "
                   f"({_difference(bio_terms, 'difference')}, {bio_terms['items']} items), "
                   f"{_equivalence_words(bio_terms)}")

    def short(words: str) -> str:
        return words.split(":")[0].split(" (")[0]

    claims = [
        {"id": "few-thousand", "claim": "prefix tuning trains \"a few thousand\" parameters vs \"hundreds of "
         "millions or billions\"", "short": "only at P=1 on the smallest model", "verdict": few,
         "where": "lesson 2 (last section)",
         "command": "`python -c \"from tutorlib import prefix_size_table; print(prefix_size_table())\"`"},
        {"id": "costs", "claim": "it cuts training time, memory, energy, checkpoint size", "short": "holds; memory "
         "only partly", "verdict": cost, "where": "lesson 5; the Results tables",
         "command": "`tutorlib compare ...` (above)"},
        {"id": "small-device", "claim": "\"enables deployment on devices with limited GPU capacity\"",
         "short": "not for one task; yes for many tasks on one device", "verdict": device,
         "where": "lesson 8 section 7; `results/inference/`",
         "command": "`tutorlib inference --out results/inference`"},
        {"id": "frequent-updates", "claim": "suits settings where \"updates must be frequent but budgets are "
         "constrained\"", "short": "holds for shipping and swapping", "verdict": frequent,
         "where": "lesson 8 section 8; `results/refresh-sentiment/`",
         "command": "`tutorlib refresh --fast --examples-per-update 128 --out results/refresh-sentiment`"},
        {"id": "rapid-iteration", "claim": "\"rapid deployment or iterative experimentation\"",
         "short": "deployment yes; iteration mixed (reversed on biochemistry)", "verdict": rapid,
         "where": "lesson 8 section 9; `tutorlib/experiments/time_to_target.py`",
         "command": "`python -c \"from tutorlib import loss_targets_table; from tutorlib.experiments.results import "
                    "ComparisonResult as C; print(loss_targets_table(C.load('results/sentiment')))\"`"},
        {"id": "nuanced", "claim": "fine-tuning may win on nuanced text", "short": short(nuanced), "verdict": nuanced,
         "where": "lesson 6, sections 2-3 and 7", "command": "`tutorlib tune`, `tutorlib seeds` (Results)"},
        {"id": "summarisation-suffices", "claim": "prefix tuning may suffice for summarisation",
         "short": "not shown: no difference detected on news; not shown equivalent", "verdict": suffices,
         "where": "lesson 7 sections 3 and 6", "command": "see Results"},
        {"id": "specialised-domain", "claim": "a specialised domain may need fine-tuning",
         "short": "holds on ACL abstracts; not on biochemistry", "verdict": specialised,
         "where": "lesson 7 sections 3, 6 and 7",
         "command": "`tutorlib compare --task summarise --dataset pubmed-biochem --methods zero-shot,full,prefix`"},
        {"id": "architecture", "claim": "\"may struggle with tasks requiring deep architectural changes\"",
         "short": "not measured (true by construction)", "verdict": "not measured: every task here keeps the "
         "model's architecture (a new classifier head trains beside the prefix); a task needing a new output "
         "vocabulary would need new embedding rows, which a frozen model with a prefix cannot learn by "
         "construction, so there is nothing to measure but a definition",
         "where": "lesson 8 section 10 (why it cannot be measured)", "command": "—"},
        {"id": "own-requirements", "claim": "evaluate against your own requirements", "short": "the rule, your "
         "budgets, your data", "verdict": "lesson 8's `recommend(rows, budget)` on the stored rows, and on a "
         "team's own file", "where": "lesson 8 sections 1-4 and 11", "command": "—"},
    ]
    return {"made_by": COMMAND,
            "equivalence": {"fraction_of_gain": EQUIVALENCE_FRACTION, "alpha": ALPHA,
                            "why": "a fifth of what full fine-tuning gains over zero-shot on the same measure and "
                                   "items, fixed before the full-minus-prefix difference was looked at"},
            "evidence": {"sentiment": sentiment, "news": news, "technical": technical, "biochemistry": bio,
                         "biochemistry_terms": bio_terms,
                         "costs": costs, "iteration": iteration},
            "claims": claims}


# ----------------------------------------------------------------------------- the pages


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(kind: str, claims: dict) -> str:
    """The markdown a ``<!-- claims:KIND -->`` block holds (without its two comment lines)."""
    rows = claims["claims"]
    if kind == "table":
        lines = ["| claim | verdict here | where | command |", "|---|---|---|---|"]
        lines += [f"| {_cell(c['claim'])} | {_cell(c['verdict'])} | {c['where']} | {_cell(c['command'])} |"
                  for c in rows]
    elif kind == "map":
        lines = ["| the source text's claim | verdict on the kit's measurements | where |", "|---|---|---|"]
        lines += [f"| {_cell(c['claim'])} | {_cell(c['verdict'])} | {c['where']} |" for c in rows]
    elif kind == "short":
        lines = ["| the claim | verdict here, in short (lesson 8, section 12: in full) | where it is measured |",
                 "|---|---|---|"]
        lines += [f"| {_cell(c['claim'])} | {_cell(c['short'])} | {c['where']} |" for c in rows]
    else:
        raise ValueError(f"Unknown claims block {kind!r}: use one of table, map, short.")
    return "\n".join(lines) + "\n"


def render_blocks(text: str, claims: dict) -> str:
    """``text`` with every claims block's body replaced by its rendering (markers kept)."""
    return BLOCK.sub(lambda m: m["open"] + render(m["kind"], claims) + m["close"], text)


def pages(root: Path) -> list[Path]:
    """The files that may hold claims blocks: README.md, docs/*.md and the lessons."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "notebooks").glob("*.ipynb"))]


def rewrite_page(path: Path, claims: dict) -> bool:
    """Render every claims block of one page in place; True when the file changed."""
    original = path.read_text()
    if path.suffix == ".ipynb":
        notebook = json.loads(original)
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                rendered = render_blocks(source, claims)
                if rendered != source:
                    cell["source"] = rendered.splitlines(keepends=True)
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    else:
        text = render_blocks(original, claims)
    if text != original:
        write_atomic(path, text)
    return text != original


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Write results/claims.json from the stored results.")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    parser.add_argument("--render", action="store_true", help="also rewrite every claims block in the pages")
    args = parser.parse_args(argv)
    root = Path(args.root)
    claims = build_claims(root)
    write_atomic(root / "results" / "claims.json", json.dumps(claims, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {root / 'results' / 'claims.json'} ({len(claims['claims'])} claims)")
    if args.render:
        for path in pages(root):
            if rewrite_page(path, claims):
                print(f"rendered the claims blocks of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
