"""The course's two tasks, each data -> batches -> metrics.

* :mod:`tutorlib.tasks.registry`: the :class:`~tutorlib.tasks.registry.Task` record every task fills in,
  and ``get_task(name)``: what a comparison calls instead of testing task names.
* :mod:`tutorlib.tasks.sentiment`: movie snippets, accuracy on clear vs ambiguous reviews.
* :mod:`tutorlib.tasks.summarise`: news leads and scientific abstracts, ROUGE.
* :mod:`tutorlib.tasks.batching`: length-grouped batches and padding, shared by both.
* :mod:`tutorlib.tasks.metrics`: the small metrics both use (macro-F1, Wilson, ECE, McNemar, sign-flip).

This package imports nothing from the kit's upper layers (experiments, course, cli).

Each task has its own ``make_batches``; call it through the module (``sentiment.make_batches``).
"""
