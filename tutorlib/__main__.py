"""``python -m tutorlib ...``: the same command line as ``tutorlib ...``, and the form launchers need:

    accelerate launch --num_processes 2 -m tutorlib compare --task sentiment --out runs/two-gpus
"""

import sys

from tutorlib.cli import main

sys.exit(main())
