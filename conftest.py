"""Shared set-up for pytest and nbval (notebooks run in fast mode too). Tests never reach the network: real assets come from the cache that
`tutorlib download --all` filled (CI does that first, explicitly); TUTORLIB_OFFLINE=1 is set here
so a missing asset is a loud OfflineError, never a silent download."""

import os

os.environ.setdefault("TUTORLIB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUTORLIB_FAST", "1")
