"""One rule for sizes (binary, IEC names) and times, used by every table, plot, widget and message."""

import doctest

import pytest

from tutorlib import units
from tutorlib.units import KIB, MIB, format_by_key, format_mib, format_seconds, format_size, to_mib


def test_docstring_examples_run():
    assert doctest.testmod(units).failed == 0


@pytest.mark.parametrize("nbytes, text", [
    (0, "0 B"), (1023, "1023 B"), (KIB, "1.00 KiB"), (1536, "1.50 KiB"), (188_160, "184 KiB"),
    (MIB, "1.00 MiB"), (90_264_584, "86.1 MiB"), (1000 * MIB, "1000 MiB"), (2**30, "1.00 GiB"),
    (1.25 * 2**30, "1.25 GiB"), (None, "-"),
])
def test_format_size_is_binary_with_three_significant_digits(nbytes, text):
    assert format_size(nbytes) == text


def test_format_size_never_uses_decimal_units_or_scientific_notation():
    for nbytes in (999, 1000, 10**6, 10**9, 1023 * KIB, 1023 * MIB, 1023 * 2**30):
        text = format_size(nbytes)
        assert "e+" not in text and text.split()[-1] in {"B", "KiB", "MiB", "GiB"}, text


def test_negative_size_is_refused_with_what_to_pass():
    with pytest.raises(ValueError, match="cannot be negative.*byte count"):
        format_size(-1)


def test_mib_and_seconds():
    assert to_mib(3 * MIB) == 3.0
    assert format_mib(1299.4) == "1,299 MiB" and format_mib(None) == "-"
    assert format_seconds(0.4831) == "0.483 s" and format_seconds(6.39) == "6.39 s"
    assert format_seconds(136.2) == "136 s" and format_seconds(None) == "-"


@pytest.mark.parametrize("key, value, text", [
    ("checkpoint_bytes", 188_160, "184 KiB"), ("peak_memory_increase_mb", 1299.4, "1,299 MiB"),
    ("median_step_seconds", 0.4831, "0.483 s"), ("energy_kwh", 0.677, "0.677"), ("tokens", 1681.2, "1,681"),
    ("energy_kwh", None, "-"),
])
def test_format_by_key_reads_the_unit_from_the_key(key, value, text):
    assert format_by_key(key, value) == text


def test_tables_widgets_and_decide_print_sizes_the_same_way():
    from tutorlib.course.widgets import cost_table_html, method_costs
    from tutorlib.experiments import decide, tables

    row = {"method": "prefix", "checkpoint_bytes": 188_160, "optimizer_state_bytes": 376_320,
           "peak_memory_mb": 2000.0, "peak_memory_increase_mb": 898.0}
    cells = {header: show(row) for header, show in tables.COST}
    assert cells["checkpoint"] == "184 KiB" and cells["optimizer state"] == "368 KiB"
    assert cells["peak memory (increase)"] == "2,000 MiB (+898)"
    assert decide.show(188_160, "bytes") == cells["checkpoint"] and decide.show(898.0, "mb") == "898 MiB"
    full, prefix = method_costs("tiny-bert")
    html = cost_table_html([full, prefix])
    assert f"<td>{format_size(full['checkpoint_bytes'])}</td>" in html
    assert f"<td>{format_size(prefix['checkpoint_bytes'])}</td>" in html
