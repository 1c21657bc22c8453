"""The zero-shot row is made once and reused by later comparisons with the same model, rows and settings."""

from datasets import Dataset, DatasetDict

from tutorlib.experiments.compare import compare


def tiny_summaries(n_test=4) -> DatasetDict:
    def rows(n, start):
        docs = [f"The council met on day {i}. It voted on roads. Rain fell." for i in range(start, start + n)]
        return {"id": [str(i) for i in range(start, start + n)], "document": docs,
                "summary": [f"Vote on day {i}." for i in range(start, start + n)]}

    return DatasetDict(train=Dataset.from_dict(rows(8, 0)), test=Dataset.from_dict(rows(n_test, 100)))


def zero_shot(capsys, **kwargs):
    result = compare("summarise", model="tiny-llama", tiny_data=kwargs.pop("data", tiny_summaries()),
                     methods="zero-shot", mode="fast", measure_energy=False, **kwargs)
    return result, capsys.readouterr().out


def test_the_second_comparison_reuses_the_row_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_ROW_CACHE", str(tmp_path))
    first, said = zero_shot(capsys)
    assert "reused from the cache" not in said and not first.row("zero-shot")["from_cache"]
    assert len(list(tmp_path.glob("*.json"))) == 1  # stored
    again, said = zero_shot(capsys)
    assert "zero-shot: reused from the cache" in said and "--no-cache" in said
    assert again.row("zero-shot")["from_cache"]
    assert again.predictions["zero-shot"] == first.predictions["zero-shot"]
    assert again.row("zero-shot")["rougeL"] == first.row("zero-shot")["rougeL"]
    remade, said = zero_shot(capsys, use_cache=False)
    assert "reused" not in said and not remade.row("zero-shot")["from_cache"]
    assert remade.predictions["zero-shot"] == first.predictions["zero-shot"]  # the same summaries, made again


def test_other_test_rows_or_settings_make_a_new_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_ROW_CACHE", str(tmp_path))
    zero_shot(capsys)
    _, said = zero_shot(capsys, data=tiny_summaries(n_test=3))
    assert "reused" not in said
    _, said = zero_shot(capsys, budget={"max_new_tokens": 5})
    assert "reused" not in said
    assert len(list(tmp_path.glob("*.json"))) == 3
