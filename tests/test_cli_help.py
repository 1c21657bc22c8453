"""The command line answers at once: every --help works, and a refused option is one message, its last line,
naming the option, before anything heavy is imported (speed: bench/cli_refusal.py, not a timed test)."""

import json
import subprocess
import sys

import pytest

from tutorlib import cli

COMMANDS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)


def test_the_docstring_and_the_help_list_every_command(capsys):
    assert COMMANDS == sorted(["doctor", "download", "demo", "compare", "tune", "seeds", "grade", "release",
                               "refresh", "inference", "build-exercises"])
    first_paragraph = cli.__doc__.split("\n\n")[0]
    assert all(name in first_paragraph for name in COMMANDS)
    for flag in ("--help", "-h"):
        assert cli.main([flag]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in COMMANDS) and "--debug" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert f"usage: tutorlib {command}" in capsys.readouterr().out


def _refuse(args, capsys) -> str:
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def csv_file(tmp_path, text="text,label\na fine film,1\na dull film,0\n", name="mine.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("args, words", [
    (["--steps", "0"], "argument --steps: must be a whole number >= 1 (got '0')"),
    (["--batch-size", "two"], "argument --batch-size: must be a whole number >= 1"),
    (["--prefix-length", "-1"], "argument --prefix-length"),
    (["--mode", "quick"], "argument --mode: invalid choice"),
    (["--methods", "full,adapter"], "--methods: Unknown method 'adapter'; choose from: full, prefix"),
    (["--methods", "zero-shot"], "--methods: 'zero-shot' does not fit the sentiment task"),
    (["--task", "translate"], "--task: Unknown task 'translate'"),
    (["--dataset", "missing.csv"], "--dataset: no file missing.csv"),
    (["--max-length", "3"], "--max-length 3 cuts every sentiment item to 3 tokens"),
    (["--lr", "full=fast"], "--lr: could not read the learning rates"),
    (["--lr", "full=-1"], "--lr: the learning rate of 'full' must be a number > 0"),
    (["--device", "gpu"], "--device: 'gpu' is not a device"),
])
def test_compare_refuses_with_the_option_name_as_its_last_line(args, words, tmp_path, capsys):
    last = _refuse(["compare", "--task", "sentiment", *args, "--out", str(tmp_path / "never")], capsys)
    assert words in last
    assert not (tmp_path / "never").exists()


def test_a_data_file_must_parse_and_have_the_task_columns(tmp_path, capsys):
    wrong = csv_file(tmp_path, "review,stars\nfine,5\n")
    last = _refuse(["compare", "--task", "sentiment", "--dataset", wrong, "--out", str(tmp_path / "o")], capsys)
    assert "--dataset: mine.csv has no 'text' column (it has review, stars)" in last
    broken = tmp_path / "rows.jsonl"
    broken.write_text("{not json\n")
    last = _refuse(["compare", "--task", "sentiment", "--dataset", str(broken), "--out", str(tmp_path / "o")], capsys)
    assert "--dataset: cannot parse rows.jsonl" in last


def test_an_earlier_comparison_is_refused_by_option_names(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps({"task": "sentiment", "rows": [{"method": "full"}]}))
    last = _refuse(["compare", "--task", "sentiment", "--out", str(tmp_path / "old")], capsys)
    assert "already holds a comparison" in last and "(--out)" in last and "--overwrite" in last
    assert "overwrite=True" not in last


def test_cuda_on_a_machine_without_it_is_refused_before_loading(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: --device cuda is allowed here")
    last = _refuse(["compare", "--task", "sentiment", "--device", "cuda", "--out", str(tmp_path / "o")], capsys)
    assert last.startswith("tutorlib compare: error: --device: cuda asked for")


def test_seeds_and_tune_check_their_options_first(tmp_path, capsys):
    assert "argument --seeds" in _refuse(["seeds", "--seeds", "0,0"], capsys)
    assert "argument --mode" in _refuse(["tune", "--mode", "quick"], capsys)
    last = _refuse(["seeds", "--tuning", str(tmp_path / "none"), "--runs", str(tmp_path / "r")], capsys)
    assert last.startswith("tutorlib seeds: error: --tuning: no ") and "tutorlib tune" in last
    assert "exactly 2 method names" in _refuse(["seeds", "--methods", "lora"], capsys)
    assert "give a rate for each of lora and prompt" in _refuse(
        ["seeds", "--methods", "lora,prompt", "--lr", "lora=1e-2", "--runs", str(tmp_path / "r")], capsys)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "tuning.json").write_text(json.dumps({"chosen": {"full": 5e-5, "prefix": 1e-2}}))
    last = _refuse(["seeds", "--methods", "lora,prompt", "--tuning", str(tmp_path / "t"), "--runs",
                    str(tmp_path / "r")], capsys)
    assert "has no rate for lora, prompt" in last and "tutorlib tune --methods lora,prompt" in last


def test_a_refusal_loads_nothing_heavy_and_debug_shows_the_traceback(tmp_path):
    """In a fresh interpreter: refused options import neither torch nor transformers."""
    code = ("import sys\nfrom tutorlib.cli import main\n"
            f"rc = [main(['compare', '--task', 'sentiment', *a, '--out', {str(tmp_path / 'o')!r}]) for a in "
            "(['--dataset', 'missing.csv'], ['--max-length', '3'], ['--methods', 'adapter'], ['--device', 'gpu'])]\n"
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[2, 2, 2, 2] False False", done.stderr
    debug = subprocess.run([sys.executable, "-m", "tutorlib", "--debug", "compare", "--task", "sentiment",
                            "--max-length", "3", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ValueError: --max-length 3" in debug.stderr
