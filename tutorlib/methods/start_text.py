"""The text a method's trainable vectors start from, as token ids.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.start_text import start_token_ids
    >>> _, tok = load_model("tiny-gpt2")                      # one token per character
    >>> start_token_ids("good", tok)
    [79, 87, 87, 76]

A prefix starts from the model's own keys/values of these tokens (:mod:`tutorlib.methods.prefix.model`), a
prompt from their input embeddings (:mod:`tutorlib.methods.prompt`): either way a start the model already
knows how to read. Both take the text the same way, as a string with its tokenizer or as token ids.
"""

from __future__ import annotations


def start_token_ids(init_text, tokenizer=None, *, error: type[Exception] = ValueError,
                    needed_for: str | None = None) -> list[int] | None:
    """The token ids of a start text (no special tokens: [CLS] or <bos> are not words of the text).

    Args:
        init_text: a string (with ``tokenizer``), token ids (a list or a (T,) tensor), or None.
        tokenizer: turns a string into ids.
        error: the exception class to raise, the calling method's own (e.g. ``PrefixError``).
        needed_for: what the tokens start, e.g. "keys/values start the prefix"; given when the method's
            ``init="words"`` cannot go on without them, so that no text is an error that says so.
    Returns:
        the ids, or None when there is no text (and none is needed).
    """
    if isinstance(init_text, str):
        if tokenizer is None:
            raise error("init_text is a string: pass tokenizer= as well (or pass token ids).")
        ids = tokenizer(init_text, add_special_tokens=False)["input_ids"]
    else:
        ids = None if init_text is None else [int(i) for i in init_text]
    if needed_for is not None and not ids:
        raise error(f"init='words' needs init_text (and tokenizer=): the text whose {needed_for}, e.g. a few "
                    f"words describing the task.")
    return ids
