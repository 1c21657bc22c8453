"""The course's two tasks, each data -> batches -> metrics.

* :mod:`tutorlib.tasks.sentiment`: movie snippets, accuracy on clear vs ambiguous reviews.
* :mod:`tutorlib.tasks.summarise`: news leads and scientific abstracts, ROUGE.
* :mod:`tutorlib.tasks.metrics`: the small metrics both use (macro-F1, Wilson, ECE, McNemar).

Each task has its own ``make_batches``; call it through the module (``sentiment.make_batches``).
"""
