"""Prefix tuning (Li & Liang, 2021): trainable per-layer key/value vectors every token attends to.

* :mod:`.model`           ``attach_prefix`` and ``PrefixTunedModel``: freeze a model, add a prefix
* :mod:`.encoder`         the prefix itself (direct or MLP-reparameterised) and its shapes
* :mod:`.attention`       the adapter to transformers' attention (the one version-dependent module)
* :mod:`.attention_share` how much attention the prefix receives, computed by hand
* :mod:`.serving`         ``PrefixBank``: one frozen model, many prefixes, mixed batches
"""
