"""Your own data: a local ``.csv``, ``.jsonl`` or ``.json`` file -> the kit's train/validation/test splits.

    >>> from tutorlib.loading.local_files import load_local_dataset
    >>> splits = load_local_dataset("reviews.csv")          # doctest: +SKIP
    >>> splits["train"].column_names                        # doctest: +SKIP
    ['id', 'text', 'label']

    tutorlib compare --task sentiment --dataset reviews.csv --fast

What the file must hold (one row per example):

* sentiment: ``text`` and ``label`` (0 = negative, 1 = positive);
* summarise: ``document`` and ``summary``;
* optional ``id`` (kept as text; else ``row-<n>``) and ``split`` (``train``, ``validation``/``val``/
  ``dev``, ``test``): with a split column your splits are kept (a missing validation split is carved
  from train, 10%, seeded); without one the rows are shuffled with ``seed`` and cut 80/10/10, like the
  kit's offline sets. Other columns are kept.

``.json`` is a list of row objects (``[{"text": ..., "label": 1}, ...]``) or an object of columns
(``{"text": [...], "label": [...]}``); ``.jsonl`` is one row object per line. Every problem
(missing file, wrong columns, labels that are not 0/1, empty cells, too few rows) is a
:class:`LocalDataError` that says what was found and what to change.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SUFFIXES = (".csv", ".jsonl", ".json")
TASK_COLUMNS = {"sentiment": ("text", "label"), "summarise": ("document", "summary")}
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "dev": "validation",
               "test": "test"}
MIN_ROWS_TO_SPLIT = 10  # 80/10/10 of fewer rows leaves an empty validation or test split


class LocalDataError(ValueError):
    """A local data file that cannot be used as it is; the message says what to change."""


def looks_like_a_file(name) -> bool:
    """True for a path ending in .csv/.jsonl/.json, or any path that exists: read as a local file."""
    text = str(name)
    return text.lower().endswith(SUFFIXES) or Path(text).expanduser().is_file()


def read_table(path) -> pd.DataFrame:
    """The file's rows as a DataFrame (every cell as read; nothing checked yet)."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = "a folder" if path.is_dir() else "no such file"
        raise LocalDataError(f"Cannot read the dataset file {path}: {where}. Give the path of a .csv, .jsonl or "
                             f".json file (relative paths start from {Path.cwd()}).")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LocalDataError(f"{path.name}: unknown file type {suffix or '(none)'!r}; "
                             "save it as .csv, .jsonl or .json.")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)  # "NA" stays text; casts come later
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_json(path, dtype=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise LocalDataError(f"Cannot parse {path.name} as {suffix[1:].upper()}: {first}. Check that the file is "
                             f"UTF-8 {suffix[1:].upper()} with a header row (CSV) or row objects (JSON).") from None


def task_of(columns, path_name: str = "the file") -> str:
    """Which task the columns fit: "sentiment" (text, label) or "summarise" (document, summary)."""
    fits = [task for task, needed in TASK_COLUMNS.items() if set(needed) <= set(columns)]
    if len(fits) == 1:
        return fits[0]
    found = ", ".join(map(str, columns)) or "no columns"
    if not fits:
        raise LocalDataError(f"{path_name} has the columns [{found}]; expected 'text' and 'label' (sentiment) or "
                             f"'document' and 'summary' (summarise), plus optional 'id' and 'split'. Rename "
                             f"the columns in the file's header.")
    raise LocalDataError(f"{path_name} has both text/label and document/summary columns; keep one pair.")


def _check_rows(rows: pd.DataFrame, task: str, name: str) -> pd.DataFrame:
    """Empty cells and labels, checked; labels become integers 0/1, text columns strings."""
    rows = rows.copy()
    for column in TASK_COLUMNS[task]:
        cells = rows[column]
        empty = cells.isna() | (cells.astype(str).str.strip() == "")
        if empty.any():
            lines = ", ".join(str(i + 2) for i in empty[empty].index[:5])  # +2: header line, 1-based
            raise LocalDataError(f"{name}: {int(empty.sum())} row(s) have an empty {column!r} (CSV lines {lines}"
                                 f"{'...' if empty.sum() > 5 else ''}; for JSON, row {int(empty[empty].index[0])} "
                                 f"counting from 0). Fill them in or delete those rows.")
    if task == "sentiment":
        text = rows["label"].astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        bad = ~numbers.isin([0, 1])
        if bad.any():
            seen = sorted(set(text[bad]))[:5]
            raise LocalDataError(f"{name}: labels must be 0 (negative) or 1 (positive); found {seen} in "
                                 f"{int(bad.sum())} row(s). Map your classes to 0 and 1 first.")
        rows["label"] = numbers.astype(int)
    for column in [c for c in ("text", "document", "summary", "id") if c in rows.columns]:
        rows[column] = rows[column].astype(str)
    return rows


def load_local_dataset(path, seed: int = 0, task: str | None = None):
    """A local file -> ``DatasetDict`` with "train", "validation" and "test" (see the module docstring).

    Args:
        path: a ``.csv``, ``.jsonl`` or ``.json`` file.
        seed: seeds the 80/10/10 shuffle (and the validation carved from train when the file's split
            column has none).
        task: "sentiment" or "summarise" to insist on that task's columns; None: whichever pair is there.

    Raises:
        LocalDataError: (a ValueError) missing file, unreadable file, wrong columns, labels not 0/1, empty
            cells, unknown split names, or too few rows to split.
    """
    import datasets

    from tutorlib.loading.data import split_80_10_10

    name = Path(path).name
    rows = read_table(path)
    rows.columns = [str(c).strip() for c in rows.columns]
    found = task_of(list(rows.columns), name)
    if task is not None and found != task:
        raise LocalDataError(f"{name} has {found} columns ({', '.join(TASK_COLUMNS[found])}), but the task is {task}, "
                             f"which needs {', '.join(TASK_COLUMNS[task])}. Use --task {found}, or another file.")
    rows = _check_rows(rows, found, name)
    if "id" not in rows.columns:
        rows.insert(0, "id", [f"row-{i}" for i in range(len(rows))])
    if "split" not in rows.columns:
        if len(rows) < MIN_ROWS_TO_SPLIT:
            raise LocalDataError(f"{name} has {len(rows)} row(s); an 80/10/10 split needs at least "
                                 f"{MIN_ROWS_TO_SPLIT} (a test set of one row measures little: hundreds are better). "
                                 f"Add rows, or give a 'split' column (train/validation/test).")
        return split_80_10_10(datasets.Dataset.from_pandas(rows, preserve_index=False), seed)
    return _published_splits(rows, name, seed)


def _published_splits(rows: pd.DataFrame, name: str, seed: int):
    """Keep the file's own split column (validation carved from train when it has none)."""
    import datasets

    split = rows.pop("split").astype(str).str.strip().str.lower()
    unknown = sorted(set(split) - set(SPLIT_NAMES))
    if unknown:
        raise LocalDataError(f"{name}: unknown split name(s) {unknown[:5]}; use train, validation (or val, dev) "
                             f"and test.")
    split = split.map(SPLIT_NAMES)
    parts = {s: datasets.Dataset.from_pandas(rows[split == s], preserve_index=False)
             for s in ("train", "validation", "test")}
    for needed in ("train", "test"):
        if len(parts[needed]) == 0:
            raise LocalDataError(f"{name}: the split column has no {needed!r} rows; both train and test are needed "
                                 f"(validation is optional).")
    if len(parts["validation"]) == 0:
        if len(parts["train"]) < 2:
            raise LocalDataError(f"{name}: 1 train row and no validation rows; add rows or a validation split.")
        cut = parts["train"].train_test_split(test_size=0.1, seed=seed)
        parts["train"], parts["validation"] = cut["train"], cut["test"]
    return datasets.DatasetDict(parts)
