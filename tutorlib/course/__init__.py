"""Course machinery: checks a notebook calls, the exercise builder, the autograder, widgets.

* :mod:`.checks`     ``check_equal`` and friends: friendly messages, plain data only, no torch import
* :mod:`.builder`    solutions -> exercises (answers and hidden tests stripped, given cells checksummed)
* :mod:`.autograde`  grade a learner's notebook in a fresh process and score every question
* :mod:`.checker`    that process: trusted given and test cells, answers kept away from the tests
* :mod:`.tamper`     tamper evidence: given-cell checksums, answer code that reaches for the grader
* :mod:`.report`     the grade report (JSON + Markdown)
* :mod:`.gradebook`  a class folder -> gradebook.csv, per-learner feedback, teacher overrides
* :mod:`.release`    the learner's copy of the course, checked for hidden tests
* :mod:`.widgets`    interactive explorers for the lessons

``THREAT_MODEL.md`` (next to this file) says what the grader stops and what it does not.
"""
