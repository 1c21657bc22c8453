"""Explore what a method will cost before training, and watch a loss curve while it trains.

    >>> from tutorlib.course.widgets import method_costs
    >>> [row["trainable_params"] for row in method_costs("tiny-gpt2", prefix_length=10)]
    [114880, 2560]
    >>> cost_explorer()                                       # doctest: +SKIP  (sliders, in a notebook)
    >>> config = TrainConfig(steps=100, eval_every=10)        # doctest: +SKIP
    >>> train(method, batches, config, eval_fn=LiveLossCurve(held_out_batches, config))   # doctest: +SKIP

Everything here is arithmetic on a model's *config*, never on its weights: the parameter counts come
from building the model on PyTorch's "meta" device (shapes only, no memory, instant), and the prefix
formula is :func:`tutorlib.training.parameters.prefix_parameter_formula`. Activation memory is not in these
numbers (it depends on batch and sequence length); :mod:`tutorlib.experiments.compare` measures it.
"""

from __future__ import annotations

import functools
import io
import math

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from tutorlib.loading.architectures import is_encoder
from tutorlib.loading.models import KNOWN_MODELS, SequenceClassifier, prepare_offline_model, tiny_config, tiny_tokenizer
from tutorlib.methods.prefix.encoder import prefix_shape
from tutorlib.training.parameters import explain_prefix_formula, prefix_parameter_formula
from tutorlib.units import format_size

BYTES_FP32 = 4
ADAM_MOMENTS = 2  # AdamW keeps exp_avg and exp_avg_sq: two numbers per trainable parameter


@functools.cache
def model_config(name: str):
    """A model's Hugging Face config without loading its weights.

    Tiny models: built in code. Offline models: the prepared folder's config.json (prepared once, see
    :func:`tutorlib.loading.models.prepare_offline_model`). Hub names: ``AutoConfig`` (network or the HF cache).
    """
    info = KNOWN_MODELS.get(name)
    if info is not None and info.source == "tiny":
        tok = tiny_tokenizer(info.architecture)
        return tiny_config(info.architecture, len(tok), tok.pad_token_id)
    if info is not None and info.source == "offline":
        return AutoConfig.from_pretrained(prepare_offline_model(name))
    try:
        return AutoConfig.from_pretrained(name)
    except OSError as err:
        raise ValueError(f"No config for {name!r} ({str(err).splitlines()[0]}). Offline, use one of: "
                         f"{', '.join(m for m, i in KNOWN_MODELS.items() if i.source != 'hub')}.") from None


@functools.cache
def _base_parameters(name: str, num_labels: int) -> int:
    config = model_config(name)
    with torch.device("meta"):  # shapes only: no memory, no random init cost
        if is_encoder(config):
            model = SequenceClassifier(AutoModel.from_config(config), num_labels)  # encoder + mean pool + head
        else:
            model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied weights once


def method_costs(model: str, prefix_length: int = 10, *, reparameterise: bool = False, mlp_hidden: int = 512,
                 num_labels: int = 2) -> list[dict]:
    """What full fine-tuning and prefix tuning of ``model`` need, by arithmetic: two rows of dicts.

    Each row: ``method``, ``total_params`` (in memory while training), ``trainable_params``,
    ``stored_params`` (kept after training), ``trainable_fraction``, and bytes (fp32): ``weights_bytes``,
    ``gradient_bytes`` (one per trainable parameter), ``optimizer_state_bytes`` (AdamW: two),
    ``checkpoint_bytes`` (the stored parameters; a file adds a small header). The prefix row also has
    ``formula``. A BERT-family model is counted as a classifier (a new ``num_labels`` head, which prefix
    tuning trains too); any other as a causal LM.
    """
    if not isinstance(prefix_length, int) or prefix_length < 1:
        raise ValueError(f"prefix_length must be a whole number >= 1 (got {prefix_length!r}).")
    config = model_config(model)
    total = _base_parameters(model, num_labels)
    s = prefix_shape(config)
    head = (s.hidden_size * num_labels + num_labels) if is_encoder(config) else 0  # trains in both methods
    prefix = prefix_parameter_formula(config, prefix_length)
    mlp = 0
    if reparameterise:  # P x hidden embedding -> Linear(hidden, mlp_hidden) -> tanh -> Linear(mlp_hidden, out)
        out = s.layers * 2 * s.kv_heads * s.head_dim
        mlp = prefix_length * s.hidden_size + (s.hidden_size + 1) * mlp_hidden + (mlp_hidden + 1) * out
    prefix_trainable = (mlp if reparameterise else prefix) + head

    def row(method, in_memory, trainable, stored, **extra):
        return {"method": method, "total_params": in_memory, "trainable_params": trainable, "stored_params": stored,
                "trainable_fraction": trainable / in_memory, "weights_bytes": BYTES_FP32 * in_memory,
                "gradient_bytes": BYTES_FP32 * trainable,
                "optimizer_state_bytes": ADAM_MOMENTS * BYTES_FP32 * trainable,
                "checkpoint_bytes": BYTES_FP32 * stored, **extra}

    return [row("full", total, total, total),
            row("prefix-mlp" if reparameterise else "prefix", total + prefix_trainable - head, prefix_trainable,
                prefix + head, formula=explain_prefix_formula(config, prefix_length))]


def cost_table_html(rows: list[dict]) -> str:
    """The rows of :func:`method_costs` as a small HTML table, with full/prefix ratios."""
    full, tuned = rows
    cells = [("trainable parameters", "trainable_params", "{:,}"), ("stored parameters", "stored_params", "{:,}"),
             ("weights in memory", "weights_bytes", None), ("gradients", "gradient_bytes", None),
             ("AdamW state", "optimizer_state_bytes", None), ("checkpoint", "checkpoint_bytes", None)]
    lines = [f"<tr><th></th><th>full</th><th>{tuned['method']}</th><th>full / {tuned['method']}</th></tr>"]
    for label, key, fmt in cells:
        show = (lambda v: fmt.format(v)) if fmt else format_size
        ratio = full[key] / tuned[key] if tuned[key] else math.inf
        lines.append(f"<tr><td>{label}</td><td>{show(full[key])}</td><td>{show(tuned[key])}</td>"
                     f"<td>{ratio:,.0f}x</td></tr>")
    return (f"<table>{''.join(lines)}</table><p>prefix: {tuned['formula']}"
            f"{' (+ classifier head)' if tuned['stored_params'] > prefix_formula_only(tuned) else ''}</p>")


def prefix_formula_only(row: dict) -> int:
    """The stored prefix size read back from a row's formula text (the number after '=')."""
    return int(row["formula"].rsplit("=", 1)[1].replace(",", ""))


def cost_explorer(models=("tiny-gpt2", "tiny-bert", "tiny-llama", "minilm-l6", "smollm2-135m"),
                  prefix_length: int = 10):
    """An ipywidgets explorer: model (size) x prefix length x MLP reparameterisation -> costs, instantly."""
    import ipywidgets as w

    model = w.Dropdown(options=list(models), value=models[0], description="model")
    length = w.IntSlider(value=prefix_length, min=1, max=200, description="prefix P")
    mlp = w.Checkbox(value=False, description="MLP reparameterisation")
    out = w.HTML()

    def update(_=None):
        try:
            out.value = cost_table_html(method_costs(model.value, length.value, reparameterise=mlp.value))
        except Exception as err:  # e.g. an offline model not downloaded yet: say so in the widget
            out.value = f"<p><b>{type(err).__name__}</b>: {err}</p>"

    for control in (model, length, mlp):
        control.observe(update, names="value")
    update()
    return w.VBox([w.HBox([model, length, mlp]), out])


# ----------------------------------------------------------------------------- a live curve


class LiveLossCurve:
    """An ``eval_fn`` for :func:`tutorlib.training.loop.train`: the mean loss on held-out batches at each
    evaluation, redrawn in the notebook as training runs.

    Args:
        batches: a list of batches (dicts of tensors with ``labels``), e.g. from a task's make_batches.
        config: the run's TrainConfig: when train() evaluates (``eval_every``, ``eval_at_start``, the
            last step) tells which step each call belongs to.
        show: redraw in the notebook (default: only inside IPython).
    ``steps`` and ``losses`` hold the points; :meth:`figure` draws them.
    """

    def __init__(self, batches, config, *, show: bool | None = None, label: str = "held-out loss"):
        self.batches, self.label = list(batches), label
        if not self.batches:
            raise ValueError("LiveLossCurve needs at least one held-out batch.")
        every = config.eval_every
        self.schedule = ([0] if config.eval_at_start else []) + [
            s for s in range(1, config.steps + 1) if s == config.steps or (every and s % every == 0)]
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.show = _in_ipython() if show is None else show
        self._handle = None

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        device = next(model.parameters()).device
        losses = [float(model(**{k: v.to(device) for k, v in b.items()}).loss) for b in self.batches]
        index = len(self.steps)
        self.steps.append(self.schedule[index] if index < len(self.schedule) else index)
        self.losses.append(sum(losses) / len(losses))
        if self.show:
            self._redraw()
        return {"eval_loss": self.losses[-1]}

    def figure(self):
        """The curve so far, a matplotlib Figure."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.5, 3.2))
        ax = fig.subplots()
        ax.plot(self.steps, self.losses, "o-", label=self.label)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    def _redraw(self) -> None:
        from IPython.display import Image, display

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=90)
        image = Image(data=buffer.getvalue())
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None
