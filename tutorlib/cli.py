"""The `tutorlib` command: doctor | download | demo | compare | tune | seeds | grade | release | refresh |
inference | build-exercises.

Each sub-command imports what it needs when it runs, so `tutorlib --help` is instant, and every option
is checked before anything heavy is imported or loaded (numbers by argparse, then names, files, the
output folder and the device), so a slip is refused at once. A learner's mistake (unknown name, no
network, bad folder) ends in one clear message, the last line printed, naming the option, and exit code
2, never a traceback; `tutorlib --debug ...` (or `TUTORLIB_DEBUG=1`) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path

from tutorlib import MODES, check_mode
from tutorlib.validate import whole_number

# What compare's settings are called on the command line, for the messages of tutorlib.experiments.spec.
OPTION_NAMES = {"task": "--task", "model": "--model", "dataset": "--dataset", "methods": "--methods",
                "mode": "--mode", "steps": "--steps", "prefix_length": "--prefix-length", "seed": "--seed",
                "split_seed": "--split-seed", "learning_rates": "--lr", "device": "--device", "out": "--out",
                "overwrite": "--overwrite", "batch_size": "--batch-size", "max_length": "--max-length",
                "test_items": "--test-items", "eval_batch_size": "--eval-batch-size"}


def whole(minimum: int = 1):
    """An argparse type: a whole number >= ``minimum`` (argparse names the option in its message)."""
    def parse(text: str) -> int:
        try:
            return whole_number(int(text), "it", minimum=minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum} (got {text!r})") from None
    parse.__name__ = "whole number"
    return parse


def seed_list(text: str) -> list[int]:
    """An argparse type: ``"0,1,2"`` -> [0, 1, 2], each once."""
    try:
        seeds = [whole_number(int(s), "seed", minimum=0) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers >= 0 separated by commas, e.g. 0,1,2 "
                                         f"(got {text!r})") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"give at least one seed, each once, e.g. 0,1,2 (got {text!r})")
    return seeds


def method_list(exactly: int | None = None):
    """An argparse type: ``"lora,prompt"`` -> ["lora", "prompt"], each once (``exactly`` that many if given)."""
    def parse(text: str) -> list[str]:
        names = [m.strip() for m in str(text).split(",") if m.strip()]
        if not names or len(set(names)) != len(names) or (exactly and len(names) != exactly):
            want = f"exactly {exactly}" if exactly else "at least one"
            raise argparse.ArgumentTypeError(f"give {want} method names, each once, separated by commas, e.g. "
                                             f"lora,prompt (got {text!r})")
        return names
    return parse


def cmd_doctor(args) -> int:
    """Print versions, device, threads, cache location and which assets are present."""
    import torch
    import transformers

    from tutorlib import mode
    from tutorlib.loading import assets
    from tutorlib.loading.data import describe_datasets
    from tutorlib.loading.models import describe_models
    from tutorlib.loading.threads import describe_threads

    print("tutorlib doctor")
    print(f"  python        {platform.python_version()} ({sys.executable})")
    print(f"  torch         {torch.__version__}   transformers {transformers.__version__}")
    cuda = torch.cuda.is_available()
    device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
    print(f"  device        {device}   cores {os.cpu_count()}")
    print(f"  threads       {describe_threads()}")
    print(f"  mode          {mode()} (TUTORLIB_MODE=fast|workshop|full)")
    print(f"  cache         {assets.cache_dir()} (move it with TUTORLIB_CACHE)")
    missing = []
    print("  offline assets:")
    for row in assets.status():
        mark = "ok     " if row["cached"] else "MISSING"
        print(f"    {mark} {row['name']:<14} {row['size_mb']:>6.1f} MiB  {row['what']}")
        if not row["cached"]:
            missing.append(row["name"])
    print("  models:\n" + describe_models())
    print("  datasets:\n" + describe_datasets())
    if missing:
        print(f"\nNext step: run `tutorlib download --all` where there is network "
              f"(missing: {', '.join(missing)}).")
    else:
        print("\nEverything is here: the kit works offline.")
    return 0


def cmd_download(args) -> int:
    """Fetch and verify offline artifacts into the cache (for a workshop: before the wifi fails)."""
    from tutorlib.loading.offline import download_offline

    download_offline(None if args.all else args.names, prepare=args.prepare)
    return 0


def cmd_demo(args) -> int:
    """Load both offline default models; print a real prediction and a real generation."""
    import torch

    from tutorlib.loading.models import load_model

    torch.manual_seed(0)
    encoder, tok = load_model("minilm-l6", head="encoder")
    texts = ["A warm, funny and moving film.", "A delightful, touching movie.",
             "The quarterly tax form is due in April."]
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state  # (B, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    print("minilm-l6 (BERT, offline): cosine similarity of sentence embeddings")
    print(f"  {texts[0]!r} vs {texts[1]!r}: {float(emb[0] @ emb[1]):.3f}")
    print(f"  {texts[0]!r} vs {texts[2]!r}: {float(emb[0] @ emb[2]):.3f}")

    lm, tok = load_model("smollm2-135m")
    prompt = "The three primary colours are"
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
    print("smollm2-135m (Llama, offline): greedy continuation")
    print(f"  {prompt}{tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True)}")
    return 0


def _stop_on_sigterm(signum, frame):
    print(f"\ntutorlib compare: stopped by signal {signum} (SIGTERM); the unfinished output folder is removed.",
          file=sys.stderr)
    sys.exit(128 + signum)


def compare_spec(args):
    """The :class:`~tutorlib.experiments.spec.ComparisonSpec` of ``tutorlib compare``'s options, checked:
    errors name the options (``--batch-size``), and come before any model or data is loaded."""
    from tutorlib.experiments.spec import ComparisonSpec

    sizes = {"batch_size": args.batch_size, "max_length": args.max_length, "test_items": args.test_items,
             "eval_batch_size": args.eval_batch_size}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return ComparisonSpec.create(
        args.task, model=args.model, dataset=args.dataset, methods=methods, mode=args.mode, steps=args.steps,
        budget={k: v for k, v in sizes.items() if v is not None}, prefix_length=args.prefix_length, seed=args.seed,
        split_seed=args.split_seed, learning_rates=parse_rates(args.lr, methods) if args.lr else None,
        device=args.device, out=args.out, overwrite=args.overwrite, names=OPTION_NAMES)


def cmd_compare(args) -> int:
    """``tutorlib compare``: check the options (:func:`compare_spec`), run the comparison, print the tables and
    what they found (``--explain``: what each column means too); return 0 (130 when interrupted).

    ``kill PID`` (SIGTERM) stops it like Ctrl-C, but only once the running PyTorch operation returns (Python
    handles signals between operations: up to one training step, or one generated token batch), then
    removes the staging folder.
    """
    started = time.perf_counter()
    spec = compare_spec(args)
    from tutorlib.experiments.compare import compare
    from tutorlib.experiments.verdict import legend, verdict
    from tutorlib.training.distributed import is_main_process

    if threading.current_thread() is threading.main_thread():
        # `kill PID` (SIGTERM) as an exception, so the staging folder is removed as on Ctrl-C.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    result = compare(spec, use_cache=not args.no_cache)
    if not is_main_process():  # launched on several processes: the main one reports
        return 0
    print()
    print(result.table())
    if result.examples and any(result.examples.values()):  # tasks that generate keep a few examples
        print()
        print(result.examples_text())
    if result.interrupted:
        print("\nInterrupted: nothing was written.")
        return 130
    print()
    print(verdict(result))
    if args.explain:
        print()
        print(legend(result))
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    print(f"\nWall time: {int(minutes)} min {seconds:.0f} s (command start to end, model loading included).")
    return 0


def cmd_tune(args) -> int:
    """``tutorlib tune``: each method's learning rate from a small grid, chosen on the validation split."""
    from tutorlib.experiments.tuning import tune_learning_rates

    tuning = tune_learning_rates(args.out, args.runs, seed=args.seed, split_seed=args.split_seed,
                                 mode=check_mode(args.mode, "--mode"), methods=args.methods)
    for row in tuning["table"]:
        print(f"{row['method']:<9} lr {row['lr']:<7g} validation {row['validation_accuracy']:.4f}  "
              f"test {row['test_accuracy']:.4f}{'  <- chosen' if row['chosen'] else ''}")
    print(f"wrote {Path(args.out) / 'tuning.json'}")
    return 0


def cmd_seeds(args) -> int:
    """``tutorlib seeds``: the sentiment comparison over several training seeds (and split seeds)."""
    import json

    a, b = methods = args.methods
    methods_option = "" if methods == ["full", "prefix"] else f" --methods {a},{b}"
    if args.lr:
        rates = parse_rates(args.lr, methods)
        if sorted(rates) != sorted(methods):
            raise ValueError(f"--lr: give a rate for each of {a} and {b} (e.g. {a}=1e-2,{b}=1e-2), got "
                             f"{', '.join(rates)}.")
    else:
        tuning = Path(args.tuning) / "tuning.json"
        if not tuning.is_file():
            raise FileNotFoundError(f"--tuning: no {tuning}; run `tutorlib tune{methods_option} --out {args.tuning}` "
                                    f"first, or give the rates yourself with --lr {a}=RATE,{b}=RATE.")
        try:
            chosen = json.loads(tuning.read_text())["chosen"]
        except (ValueError, KeyError):
            raise ValueError(f"--tuning: {tuning} is not a tuning.json written by `tutorlib tune` (no \"chosen\" "
                             f"rates); run `tutorlib tune --out {args.tuning}` again.") from None
        missing = [m for m in methods if m not in chosen]
        if missing:
            raise ValueError(f"--tuning: {tuning} has no rate for {', '.join(missing)}; run `tutorlib tune --methods "
                             f"{','.join(missing)} --out {args.tuning}` first.")
        rates = {m: chosen[m] for m in methods}
    from tutorlib.experiments.seeds import run_seeds, seeds_table, summarise_seeds

    seeds, split_seeds, mode = args.seeds, args.split_seeds, check_mode(args.mode, "--mode")
    records = run_seeds(args.runs, seeds, rates, split_seeds=split_seeds[:1], mode=mode)
    for split_seed in split_seeds[1:]:  # another split: training seed 0 only
        records += run_seeds(args.runs, [0], rates, split_seeds=[split_seed], mode=mode)
    summary = summarise_seeds(records, a, b)
    out = Path(args.out or ("results/sentiment-seeds" if not methods_option else f"results/sentiment-seeds-{a}-{b}"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(seeds_table(summary))
    print(f"wrote {out / 'summary.json'}")
    return 0


def parse_rates(text: str, methods) -> dict[str, float]:
    """``"full=5e-5,prefix=1e-2"`` -> {"full": 5e-05, "prefix": 0.01}; one bare number applies to every method."""
    text = str(text).strip()
    try:
        if "=" not in text:
            rates = {m: float(text) for m in methods}
        else:
            pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
            rates = {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise ValueError(f"--lr: could not read the learning rates {text!r}: write one number (e.g. 1e-3) or "
                         f"method=rate pairs separated by commas (e.g. full=5e-5,prefix=1e-2).") from None
    bad = [m for m, lr in rates.items() if not lr > 0]
    if bad:
        raise ValueError(f"--lr: the learning rate of {bad[0]!r} must be a number > 0 (got {rates[bad[0]]!r}).")
    return rates


def cmd_grade(args) -> int:
    from tutorlib import check_mode
    from tutorlib.course.autograde import GradingOptions
    from tutorlib.course.sandbox import Limits, SandboxUnavailable, check_sandbox

    for option, value in (("--notebook-budget", args.notebook_budget), ("--memory-gib", args.memory_gib)):
        if value is None or value <= 0:
            print(f"error: {option} must be a positive number, not {value}", file=sys.stderr)
            return 2
    feedback = args.feedback
    if not feedback and not args.unsafe_no_sandbox:
        try:
            check_sandbox()
        except SandboxUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    # The assignments are sized for fast mode; TUTORLIB_MODE=workshop|full grades with bigger budgets.
    options = GradingOptions(mode=check_mode(os.environ.get("TUTORLIB_MODE") or "fast"), cell_timeout=args.cell_timeout,
                             notebook_budget=args.notebook_budget, unsafe_no_sandbox=args.unsafe_no_sandbox,
                             limits=Limits(memory_bytes=int(args.memory_gib * 2**30), threads=threads))
    if len(args.paths) == 1 and Path(args.paths[0]).is_dir():
        return class_main(args.paths[0], args.solutions, args.out, roster=args.roster, overrides=args.overrides,
                          options=options, jobs=args.jobs, class_budget=args.class_budget)
    return grade_main(args.paths, out_dir=args.out, pass_mark=args.pass_mark, solutions_dir=args.solutions,
                      hidden=not feedback, options=options)


def cmd_release(args) -> int:
    from tutorlib.course.builder import CourseError
    from tutorlib.course.release import release

    try:
        files = release(args.out, solutions_dir=args.solutions)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote the learner's copy to {args.out}: {len(files)} files, no solutions/ and no hidden test "
          "(checked). Keep solutions/ private: grade with `tutorlib grade SUBMISSIONS --solutions solutions`.")
    return 0


def class_main(submissions, solutions_dir, out_dir, roster=None, overrides=None, options=None, jobs: int = 1,
               class_budget: float | None = None) -> int:
    """``tutorlib grade SUBMISSIONS_DIR``: one folder per learner; writes the gradebook. Exit 2 on a
    missing folder or solutions; 130 on Ctrl-C (the gradebook keeps every learner graded so far)."""
    from tutorlib.course.gradebook import grade_class

    try:
        learners = grade_class(submissions, solutions_dir, out_dir, roster=roster, overrides=overrides,
                               options=options, jobs=jobs, class_budget=class_budget, verbose=True)
    except (ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print((Path(out_dir) / "report.md").read_text())
    print(f"wrote {Path(out_dir) / 'gradebook.csv'} and feedback for {len(learners)} learner(s) in "
          f"{Path(out_dir) / 'feedback'}")
    return 0


def cmd_refresh(args) -> int:
    from tutorlib.experiments.refresh import refresh_experiment, refresh_table, save_refresh

    started = time.perf_counter()
    result = refresh_experiment(updates=args.updates, examples_per_update=args.examples_per_update,
                                mode=check_mode(args.mode, "--mode"), progress=True)
    result["settings"]["wall_seconds"] = time.perf_counter() - started
    print(refresh_table(result), f"\nwrote {save_refresh(result, args.out)}", sep="\n")
    return 0


def cmd_inference(args) -> int:
    import json

    from tutorlib.experiments.inference import measure_inference

    report = measure_inference(models=args.models.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1), f"\nwrote {out / 'inference.json'}", sep="\n")
    return 0


def cmd_build_exercises(args) -> int:
    return build_main(args.solutions, args.exercises, check=args.check, force=args.force)


def grade_main(paths, out_dir: str | Path | None = "grades", pass_mark: float | None = None,
               solutions_dir: str | Path = "solutions", hidden: bool = True, options=None) -> int:
    """``tutorlib grade``: grade, print the summary, write the files. Exit code 0; 1 when the
    total is below ``pass_mark``; 2 when a path does not exist or no notebook was given."""
    from tutorlib.course.autograde import grade_notebooks

    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        print(f"error: no notebook at {', '.join(missing)}" if missing else "error: no notebooks to grade "
              "(give paths such as exercises/*.ipynb)", file=sys.stderr)
        return 2
    try:
        report = grade_notebooks(paths, solutions_dir=solutions_dir, out_dir=out_dir, pass_mark=pass_mark,
                                 verbose=True, hidden=hidden, options=options)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.to_markdown())
    if out_dir is not None:
        print(f"wrote {Path(out_dir) / 'grades.json'} and {Path(out_dir) / 'grades.md'}")
    return 0 if report.passed in (None, True) else 1


def build_main(solutions_dir: str | Path = "solutions", exercises_dir: str | Path = "exercises",
               check: bool = False, force: bool = False) -> int:
    """``tutorlib build-exercises``: build (or with ``check`` only verify) the exercises.

    Exit code: 0 done / in sync, 1 out of sync (``check``), 2 a solution notebook or folder is wrong.
    """
    from tutorlib.course.builder import CourseError, build_exercises, check_exercises_in_sync

    try:
        if check:
            stale = check_exercises_in_sync(solutions_dir, exercises_dir)
            for path in stale:
                print(f"{path}: missing, out of date, or without a solution notebook")
            if stale:
                print(f"{len(stale)} exercise file(s) out of sync: run `tutorlib build-exercises` "
                      "(and delete exercises that have no solution).", file=sys.stderr)
                return 1
            print(f"exercises in {exercises_dir} are in sync with {solutions_dir}")
            return 0
        paths = build_exercises(solutions_dir, exercises_dir, force=force)
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(paths)} exercise notebook(s) in {exercises_dir}: " + ", ".join(str(p) for p in paths))
    return 0


def _mode_options(parser, what: str) -> None:
    """--mode fast|workshop|full, and --fast for --mode fast."""
    parser.add_argument("--mode", choices=MODES, default=None,
                        help=f"{what}: fast (seconds; a check, not a measurement), workshop (minutes; the sign of "
                             "full mode) or full (default: TUTORLIB_MODE, else full)")
    parser.add_argument("--fast", dest="mode", action="store_const", const="fast", help="the same as --mode fast")


def _run_store_options(parser, *, out: str, what: str) -> None:
    """--mode, --runs and --out for the commands that train many sentiment runs and keep each one."""
    _mode_options(parser, "every run's budget")
    parser.add_argument("--runs", default="results/sentiment-runs",
                        help="one JSON file per training run (shared by tune and seeds; a stopped run resumes)")
    parser.add_argument("--out", default=out, help=f"where {what} goes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tutorlib", description=" ".join(__doc__.split("\n\n")[0].split()),
                                epilog="A refused option ends in one message, its last line; --debug shows the "
                                       "traceback instead.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error (or TUTORLIB_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("doctor", help="versions, device, cache, which assets are present").set_defaults(func=cmd_doctor)

    d = sub.add_parser("download", help="prefetch offline models and data into the cache")
    d.add_argument("names", nargs="*", help="artifact names (default: all)")
    d.add_argument("--all", action="store_true", help="every artifact")
    d.add_argument("--prepare", action="store_true", help="also convert models once (SmolLM2 GGUF -> fp32)")
    d.set_defaults(func=cmd_download)

    sub.add_parser("demo", help="load both offline models; a prediction and a generation").set_defaults(func=cmd_demo)

    c = sub.add_parser("compare", help="full fine-tuning vs prefix tuning (and other methods) on a task, one budget")
    c.add_argument("--task", required=True, help="a task: sentiment or summarise")
    c.add_argument("--model", default=None, help="model name (default: the task's offline default)")
    c.add_argument("--dataset", default=None, help="dataset name (default: the task's offline default)")
    c.add_argument("--methods", default="full,prefix",
                   help="comma-separated method names, e.g. full,prefix,prefix-mlp (an unknown name lists them all)")
    c.add_argument("--steps", type=whole(), default=None, help="training steps per method (default: the mode's)")
    c.add_argument("--prefix-length", type=whole(), default=10, help="virtual tokens per layer (default 10)")
    c.add_argument("--seed", type=whole(0), default=0, help="the training seed (default 0)")
    _mode_options(c, "the budget")
    c.add_argument("--batch-size", type=whole(), default=None, help="training batch (global: shared by all processes)")
    c.add_argument("--max-length", type=whole(), default=None,
                   help="tokens per training/test item (longer ones are cut; too few for the task is refused)")
    c.add_argument("--test-items", type=whole(), default=None, help="score on the first N test items only")
    c.add_argument("--eval-batch-size", type=whole(), default=None, help="items scored (summaries generated) at once "
                                                                      "(default: the task's; summarise: chosen from "
                                                                      "free memory)")
    c.add_argument("--no-cache", action="store_true",
                   help="make the zero-shot row again instead of reusing a stored one")
    c.add_argument("--lr", default=None, help="learning rates: method=rate pairs (full=5e-5,prefix=1e-2) or one "
                                              "number for every method (default: each method's documented rate)")
    c.add_argument("--split-seed", type=whole(0), default=0,
                   help="which rows go to train/validation/test (data without published splits); --seed is the "
                        "training seed")
    c.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    c.add_argument("--out", default="runs/compare", help="output folder for results.json and plots")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --out")
    c.add_argument("--explain", action="store_true", help="also say what each column of the tables means")
    c.set_defaults(func=cmd_compare)

    t = sub.add_parser("tune", help="sentiment: each method's learning rate from a grid, chosen on validation")
    t.add_argument("--seed", type=whole(0), default=0, help="the training seed (default 0)")
    t.add_argument("--split-seed", type=whole(0), default=0, help="the data split's seed (default 0)")
    t.add_argument("--methods", type=method_list(), default="full,prefix",
                   help="the methods to tune, comma-separated (default full,prefix); their rates join any "
                        "others already in --out's tuning.json")
    _run_store_options(t, out="results/sentiment-tuning", what="tuning.json")
    t.set_defaults(func=cmd_tune)

    s = sub.add_parser("seeds", help="sentiment: two methods (full, prefix) over several training seeds (mean, "
                                     "95%% interval)")
    s.add_argument("--seeds", type=seed_list, default="0,1,2",
                   help="training seeds (the data split stays at --split-seeds' first)")
    s.add_argument("--split-seeds", type=seed_list, default="0",
                   help="data split seeds; beyond the first, run at training seed 0")
    s.add_argument("--methods", type=method_list(exactly=2), default="full,prefix",
                   help="the two methods compared, e.g. lora,prompt (default full,prefix)")
    s.add_argument("--lr", default=None, help="a rate for each of the two --methods, e.g. full=RATE,prefix=RATE "
                                             "(default: the choice in --tuning)")
    s.add_argument("--tuning", default="results/sentiment-tuning", help="folder with tuning.json (for the rates)")
    _run_store_options(s, out=None, what="summary.json (default results/sentiment-seeds, or "
                                         "results/sentiment-seeds-A-B for other methods)")
    s.set_defaults(func=cmd_seeds)

    g = sub.add_parser("grade", help="score notebooks (grades.json, grades.md), or a class folder (gradebook.csv)")
    g.add_argument("paths", nargs="+", help="notebooks, or one folder with a sub-folder per learner")
    g.add_argument("--out", default="grades")
    g.add_argument("--cell-timeout", type=whole(), default=300, help="seconds one cell may run (default 300)")
    g.add_argument("--pass-mark", type=float, default=None, help="exit 1 below this fraction (0-1)")
    g.add_argument("--solutions", default="solutions", help="the teacher's private solutions (hidden tests)")
    g.add_argument("--feedback", action="store_true", help="visible checks only, no solutions (a learner's run)")
    g.add_argument("--roster", default=None, help="class mode: CSV folder,learner mapping folders to learner ids")
    g.add_argument("--overrides", default=None, help="class mode: CSV learner,notebook,decision,note (teacher)")
    g.add_argument("--jobs", type=whole(), default=1, help="class mode: learners graded at the same time")
    g.add_argument("--notebook-budget", type=float, default=900, help="seconds for one notebook, all cells")
    g.add_argument("--class-budget", type=float, default=None, help="class mode: seconds for the whole class")
    g.add_argument("--memory-gib", type=float, default=4, help="memory one notebook's sandbox may use")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade without the bubblewrap sandbox (learner code can then read and change files); "
                        "every line of the report and gradebook says so")
    g.set_defaults(func=cmd_grade)

    r = sub.add_parser("release", help="write the learner's copy: no solutions, no hidden tests")
    r.add_argument("out", help="a new folder outside the repository")
    r.add_argument("--solutions", default="solutions")
    r.set_defaults(func=cmd_release)

    r = sub.add_parser("refresh",
                       help="K data refreshes of MiniLM sentiment: per update train time, bytes, swap, quality")
    r.add_argument("--out", default="results/refresh-sentiment")
    r.add_argument("--updates", type=whole(), default=5, help="K, the number of data refreshes (default 5)")
    r.add_argument("--examples-per-update", type=whole(), help="default: the train split in K slices")
    _mode_options(r, "test size, batch and sequence length")
    r.set_defaults(func=cmd_refresh)

    i = sub.add_parser("inference", help="inference latency/memory with and without a prefix; serving N tasks")
    i.add_argument("--out", default="results/inference")
    i.add_argument("--models", default="minilm-l6,smollm2-135m")
    i.set_defaults(func=cmd_inference)

    b = sub.add_parser("build-exercises", help="write exercises/ from solutions/")
    b.add_argument("--solutions", default="solutions")
    b.add_argument("--exercises", default="exercises")
    b.add_argument("--check", action="store_true", help="only check they are in sync (exit 1 if not)")
    b.add_argument("--force", action="store_true", help="overwrite exercises that were edited (a learner's answers)")
    b.set_defaults(func=cmd_build_exercises)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code. An error a learner can fix is one message on stderr, its last line,
    and exit code 2 (``--debug`` or ``TUTORLIB_DEBUG=1``: the traceback instead). ``--help`` exits 0."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or an option argparse refused (2, its message already printed)
        return int(stop.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, KeyError) as err:
        if args.debug or os.environ.get("TUTORLIB_DEBUG") == "1":
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tutorlib {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
