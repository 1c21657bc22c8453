"""Training: the one loop every method uses, and what a run costs.

* :mod:`.loop`              ``train`` and ``TrainConfig``
* :mod:`.callbacks`         what runs around each step: energy, memory, progress bar, Ctrl-C (``TrainerCallback``)
* :mod:`.measure`           time, peak memory, energy, optimizer state, checkpoint bytes
* :mod:`.flops`             the FLOP-count limit of a prefix step against a full step
* :mod:`.parameters`        total / trainable / stored parameters, the prefix formula
* :mod:`.parameter_groups`  where a model's parameters sit (embeddings, attention, MLP, ...)
"""
