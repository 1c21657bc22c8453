"""Course machinery: checks a notebook calls, the exercise builder, the autograder, widgets.

* :mod:`.checks`     ``check_equal`` and friends: friendly messages, no torch import
* :mod:`.builder`    solutions -> exercises (answers and hidden tests stripped)
* :mod:`.autograde`  run a learner's notebook in its own kernel and score every question
* :mod:`.report`     the grade report (JSON + Markdown)
* :mod:`.widgets`    interactive explorers for the lessons
"""
