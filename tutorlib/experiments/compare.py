"""Full fine-tuning vs prefix tuning on one task, under one budget: the kit's main measurement.

    >>> from tutorlib.experiments.compare import compare
    >>> result = compare("sentiment", mode="fast")    # doctest: +SKIP  (minilm-l6, a few minutes on a CPU)
    >>> print(result.table())                         # doctest: +SKIP  quality and cost, one row per method
    >>> result.rows[0]["ambiguous_accuracy"]          # doctest: +SKIP
    >>> result.save("runs/sentiment")                 # doctest: +SKIP  results.json + PNG plots

Fair by construction: every method gets a *fresh* copy of the same pretrained model, the same
batches in the same order, the same number of steps and the same seed. Only what trains differs,
and its learning rate (:data:`LEARNING_RATES`, each method's documented default).

What to run is one :class:`~tutorlib.experiments.spec.ComparisonSpec`, checked before anything loads;
``compare("sentiment", steps=40, ...)`` builds it from keywords, or pass one made with
``ComparisonSpec.create``. Each task's budgets per mode and its prefix start text live in its
:class:`~tutorlib.tasks.registry.Task` record.

Methods and tasks come from their registries (:mod:`tutorlib.methods.registry`,
:mod:`tutorlib.tasks.registry`): each method says which tasks it fits and its default learning rate,
each task its data columns, model head, batches, scores and reference rows. This module only
orchestrates them.

The output folder (``out_dir``) is checked before anything runs, written in a hidden sibling
folder, and renamed into place only when every method has finished: a crash or Ctrl-C leaves
nothing half-written. Ctrl-C during training stops that method after its current step; the
comparison then stops too, returns what finished (``result.interrupted`` is True) and writes no
folder, because a half-trained method would not be under the same budget (``result.save(folder)``
keeps it anyway if you want it). Only a hard kill (``kill -9``, power loss) can leave a hidden
``.NAME.partial-*`` folder beside ``out_dir``; nothing reads it, delete it. Checkpoints go to
``out_dir/<method>/``; without ``out_dir``
they are written to a temporary folder, measured and deleted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from tutorlib.experiments.output_folder import OutputFolder
from tutorlib.experiments.results import ComparisonResult, environment
from tutorlib.experiments.spec import ComparisonSpec
from tutorlib.methods.registry import all_methods, get_method
from tutorlib.tasks.registry import all_tasks
from tutorlib.training.measure import older_objects_set_aside


def _default_learning_rates() -> dict[tuple[str, str], float]:
    """(task, method) -> the method's documented default rate on that task, for every trained method."""
    return {(task.name, method.name): method.learning_rate_for(task.name)
            for task in all_tasks() for method in all_methods() if method.trains and method.fits(task.head)}


LEARNING_RATES = _default_learning_rates()
"""Peak learning rates (AdamW, 10% warm-up, linear decay) by (task, method); each method's module says
why its rate (e.g. :data:`tutorlib.methods.prefix.model.PREFIX`)."""

PREFIX_INIT_TEXT = {task.name: task.prefix_init_text for task in all_tasks()}
"""How each task's prefix starts (None: random), read from its Task record; its module says why."""


def compare(spec: ComparisonSpec | str, *, tiny_data=None, progress: bool = True, measure_energy: bool = True,
            use_cache: bool = True, **settings) -> ComparisonResult:
    """Train and evaluate each method of ``spec`` under one budget; return the :class:`ComparisonResult`.

    Args:
        spec: a :class:`~tutorlib.experiments.spec.ComparisonSpec`, or a task name whose spec is built from
            ``settings`` with :meth:`ComparisonSpec.create` (model, dataset, methods, mode, steps, budget,
            prefix_length, seed, split_seed, learning_rates, device, out_dir, overwrite; see there).
            ``aclsum`` gets its aspect written into each document ("Aspect: approach. ..."), or the task
            would be ill-posed.
        tiny_data: a ``DatasetDict`` (train/validation/test) used instead of loading the dataset;
            for tests and lessons with hand-made data.
        progress: progress bars and one line per stage.
        measure_energy: estimate each run's energy (codecarbon, else CPU-time; the method is recorded).
        use_cache: reuse the zero-shot row an earlier comparison stored for the same model, test rows and
            generation settings (:mod:`tutorlib.experiments.zero_shot_cache`); False makes it again.

    Raises:
        ValueError: anything :class:`ComparisonSpec` refuses (an unknown name, a number out of range, ...),
            a dataset without the task's columns.
        OSError: the output folder cannot be written, or holds an earlier comparison and overwrite is off
            (both checked before anything trains).
        DoesNotFitError: a training step cannot fit in memory (a ValueError; checked before it trains).
    """
    if not isinstance(spec, ComparisonSpec):
        if tiny_data is not None and settings.get("dataset") is None:
            settings["dataset"] = "tiny-data"
        settings.setdefault("out", settings.pop("out_dir", None))
        spec = ComparisonSpec.create(spec, **settings)
    elif settings:
        raise TypeError(f"compare(spec) takes no settings beside the spec (got {', '.join(settings)}); "
                        f"use dataclasses.replace(spec, ...) or ComparisonSpec.create(...).")
    return _run(spec, tiny_data=tiny_data, progress=progress, measure_energy=measure_energy, use_cache=use_cache)


def _run(spec: ComparisonSpec, *, tiny_data, progress: bool, measure_energy: bool, use_cache: bool) -> ComparisonResult:
    """Data once, then every method in turn, inside an output folder written all at once."""
    from tutorlib.experiments.runs import build_paired_tests, prepare_data, reference_rows, run_method
    from tutorlib.loading.data import shares_text
    from tutorlib.training.distributed import is_main_process

    started, load_at_start = time.perf_counter(), environment().get("load_average_1_5_15_min")
    say = print if progress and is_main_process() else (lambda *a, **k: None)
    # Checks the folder now; removes the staging folder on any error. Only the main process writes a folder.
    # The objects that exist before the comparison are set aside: each method's one garbage collection then
    # walks only the comparison's own objects (about a second less per method in a lesson's kernel).
    with OutputFolder(spec.out if is_main_process() else None, overwrite=spec.overwrite) as folder, \
            older_objects_set_aside():
        data = prepare_data(spec.task, spec.model, spec.dataset, tiny_data, spec.budget, spec.seed,
                            split_seed=spec.split_seed)
        budget = replace(spec.budget, steps=data.steps)
        say(f"compare: {spec.task.name} | {spec.model} on {spec.dataset} | {spec.mode} mode | "
            f"{budget.steps} steps of {budget.batch_size} | methods {', '.join(spec.methods)} | seed {spec.seed}"
            + (f" (split seed {spec.split_seed})" if spec.split_seed != 0 else ""))
        runs = []
        for name in spec.methods:
            method, lr = get_method(name), spec.learning_rates.get(name)
            say(f"\n== {name} ({method.description})" + (f"; lr {lr:g}" if lr is not None else ""))
            run = run_method(method, spec=replace(spec, budget=budget), data=data,
                             checkpoint_root=folder.checkpoints, progress=progress, measure_energy=measure_energy,
                             use_cache=use_cache)
            runs.append(run)
            if run.history is not None and run.history.interrupted:
                say(f"\ncompare: {name} was interrupted; the remaining methods are skipped and no output "
                    f"folder is written (result.interrupted is True).")
                break
        result = ComparisonResult(
            task=spec.task.name, model=spec.model, dataset=spec.dataset, mode=spec.mode,
            seed=spec.seed, prefix_length=spec.prefix_length,
            budget=asdict(budget), data_summary=data.summary, rows=[r.row for r in runs],
            histories={r.method: r.history for r in runs if r.history is not None},
            predictions={r.method: r.predictions for r in runs}, examples={r.method: r.examples for r in runs},
            references=reference_rows(spec.task, data), paired_tests=build_paired_tests(spec.task, runs),
            learning_rates=dict(spec.learning_rates), prefix_init_text=spec.prefix_init_text,
            share_text=tiny_data is not None or shares_text(spec.dataset),
            interrupted=any(r.history is not None and r.history.interrupted for r in runs),
            environment={**environment(), "load_average_at_start": load_at_start},
            wall_seconds=time.perf_counter() - started)
        if folder.path is not None and not result.interrupted:
            result.save(folder.staging)
            folder.commit()
            say(f"\ncompare: wrote {folder.path} ({', '.join(sorted(p.name for p in folder.path.iterdir()))})")
    return result
