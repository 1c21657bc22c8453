"""Experiments: methods compared on a task under one budget, and what to conclude.

* :mod:`.compare`   ``compare()``: every method, same model, data, batches, steps and seed
* :mod:`.runs`      one method's run inside a comparison (train, evaluate, measure)
* :mod:`.results`   the results format (results.json, predictions, checkpoints) and finding stored runs
* :mod:`.tables`    the printed tables
* :mod:`.plots`     the figures
* :mod:`.refresh`   K successive data refreshes: per update, time, bytes to ship, swap time, quality
* :mod:`.inference` inference latency and memory with and without a prefix; serving N tasks
* :mod:`.time_to_target` training time each method needs to reach a loss or accuracy target
* :mod:`.decide`    budgets in, a measured recommendation out
"""
