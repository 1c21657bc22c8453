"""The three registries: model families, methods, tasks. What the rest of the kit reads instead of names.
All three are one generic :class:`tutorlib.registry.Registry`: one order, one error for an unknown name."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import LlamaConfig, OPTConfig

from tutorlib.loading.architectures import (
    ARCHITECTURES,
    UnsupportedModelError,
    architecture_of,
    is_encoder,
    model_name_of,
    sizes_of,
)
from tutorlib.loading.models import KNOWN_MODELS, load_model, pretrained_part
from tutorlib.methods.checkpoints import CheckpointError, save_tensors
from tutorlib.methods.lora import attach_lora
from tutorlib.methods.prefix.encoder import prefix_shape
from tutorlib.methods.registry import Method, get_method, load_checkpoint, method_names, register
from tutorlib.registry import Registry, UnknownNameError
from tutorlib.tasks.registry import TASKS, get_task

PACKAGE = Path(__file__).resolve().parents[1] / "tutorlib"


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_every_known_family_has_its_facts_and_they_match_the_model(name):
    model, _ = load_model(name)
    config = pretrained_part(model).config
    family = architecture_of(config)
    assert family.name == KNOWN_MODELS[name].architecture
    assert is_encoder(config) == (family.kind == "encoder") == (name == "tiny-bert")
    sizes, shape = sizes_of(config), prefix_shape(config)
    assert (sizes.layers, sizes.kv_heads, sizes.head_dim) == (shape.layers, shape.kv_heads, shape.head_dim)
    assert sizes.heads * sizes.head_dim == sizes.hidden == 64
    assert model_name_of(config) == name  # load_model records the kit's name
    adapted = attach_lora(model, rank=2).lora_layers()  # LoRA's default layers: the family record's names
    assert {path.rsplit(".", 1)[-1] for path in adapted} == set(family.lora_targets)
    assert len(adapted) == sizes.layers * len(family.lora_targets)


def test_known_models_use_only_known_families():
    assert {m.architecture for m in KNOWN_MODELS.values()} <= set(ARCHITECTURES)


def test_grouped_query_attention_sizes():
    sizes = sizes_of(LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                                 num_key_value_heads=3, intermediate_size=1536))
    assert (sizes.kv_heads, sizes.head_dim, sizes.mlp_matrices, sizes.mlp_width) == (3, 64, 3, 1536)


def test_an_unknown_family_gets_the_list_of_known_ones():
    with pytest.raises(UnsupportedModelError, match="(?s)gpt2.*bert.*llama.*model_type='opt'"):
        architecture_of(OPTConfig())


def test_method_registry_lists_describes_and_refuses_unknown_names():
    assert method_names()[:4] == ["full", "prefix", "prefix-mlp", "zero-shot"]
    assert get_method("full").trains and not get_method("zero-shot").trains
    assert not get_method("zero-shot").fits("classification") and get_method("zero-shot").fits("causal-lm")
    assert get_method("prefix-mlp").learning_rate_for("sentiment") == 1e-4
    with pytest.raises(ValueError, match="Unknown method 'adapter'; choose from: full"):
        get_method("adapter")
    with pytest.raises(ValueError, match="already registered"):
        register(Method("full", "another full", ("causal-lm",), wrap=lambda m, s: m, learning_rate=1.0))


def test_loading_a_checkpoint_dispatches_on_its_recorded_method(tmp_path):
    import torch

    save_tensors(tmp_path / "odd", {"x": torch.zeros(1)}, {"method": "adapter"}, "x.safetensors")
    with pytest.raises(CheckpointError, match="unknown checkpoint method 'adapter'"):
        load_checkpoint(tmp_path / "odd")


def test_checkpoints_module_is_storage_only():
    source = (PACKAGE / "methods" / "checkpoints.py").read_text()
    imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith(("tutorlib.methods.full", "tutorlib.methods.prefix")) for m in imported)


def test_task_registry_accepts_aliases_and_names_the_tasks():
    assert get_task("Summarization").name == "summarise"
    assert get_task("sentiment").head == "classification" and get_task("summarise").generates
    with pytest.raises(UnknownNameError, match="Unknown task 'translate'; choose from: sentiment, summarise"):
        get_task("translate")


def test_tasks_import_nothing_from_upper_layers_and_not_each_other():
    for path in (PACKAGE / "tasks").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        upper = [m for m in imported if m.startswith(("tutorlib.experiments", "tutorlib.course", "tutorlib.cli"))]
        assert not upper, (path.name, upper)
        if path.name == "summarise.py":
            assert "tutorlib.tasks.sentiment" not in imported  # batching lives in tasks/batching.py


def test_sentiment_task_scores_a_model_through_its_record():
    from datasets import Dataset

    task = get_task("sentiment")
    model, tok = load_model("tiny-bert")
    rows = Dataset.from_dict({"text": ["good", "bad", "fine film"], "label": [1, 0, 1]})
    batches = task.make_batches(rows, tok, batch_size=2, max_length=16, shuffle=False, seed=0)
    assert sum(len(b["labels"]) for b in batches) == 3
    metrics, predictions, examples = task.evaluate(model, tok, rows, batch_size=2, max_length=16)
    assert metrics["n"] == 3 and len(predictions) == 3 and examples == []
    assert task.reference_rows(rows)[0]["accuracy"] == pytest.approx(2 / 3)
    test = task.paired_test(predictions, predictions)
    assert test["p_value"] == 1.0 and test["only_a_right"] == test["only_b_right"] == 0


def test_every_registry_lists_in_its_table_order_whatever_the_import_order():
    # A fresh interpreter that imports summarise (and head_only) first: the listings keep the tables' order.
    code = ("import tutorlib.tasks.summarise, tutorlib.methods.head_only\n"
            "from tutorlib.tasks.registry import all_tasks\n"
            "from tutorlib.methods.registry import all_methods\n"
            "from tutorlib.loading.architectures import ARCHITECTURES\n"
            "print([t.name for t in all_tasks()], [m.name for m in all_methods()], list(ARCHITECTURES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['sentiment', 'summarise'] "
                           "['full', 'prefix', 'prefix-mlp', 'zero-shot', 'head-only', 'lora', 'prompt'] "
                           "['gpt2', 'bert', 'llama']")


def test_names_are_known_without_importing_torch():
    code = ("import sys\nfrom tutorlib.methods.registry import method_names\n"
            "from tutorlib.tasks.registry import all_tasks\n"
            "names = method_names(), [t.name for t in all_tasks()]\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_one_error_for_an_unknown_name_in_every_registry():
    for registry, unknown in ((TASKS, "translate"), (ARCHITECTURES, "opt")):
        with pytest.raises(UnknownNameError, match=f"Unknown {registry.kind} '{unknown}'; choose from: "):
            registry.get(unknown)
    with pytest.raises(UnknownNameError, match="Unknown method 'adapter'; choose from: full, prefix"):
        get_method("adapter")


def test_a_record_must_be_declared_in_its_table_and_its_module_must_register_it():
    from types import SimpleNamespace

    colours = Registry("colour", {"red": __name__, "blue": __name__}, aliases={"Navy": "blue"})
    blue = colours.register(SimpleNamespace(name="blue"))
    red = colours.register(SimpleNamespace(name="red"))
    assert colours.get("navy") is blue and colours.get("BLUE") is blue and colours.find("green") is None
    assert colours.all() == [red, blue]
    with pytest.raises(ValueError, match="'green': '<its module>'"):
        colours.register(SimpleNamespace(name="green"))
    with pytest.raises(ValueError, match="already registered"):
        colours.register(SimpleNamespace(name="blue"))
    broken = Registry("colour", {"red": "tutorlib.units"})
    with pytest.raises(ImportError, match="tutorlib.units was declared to register the colour 'red'"):
        broken.get("red")
