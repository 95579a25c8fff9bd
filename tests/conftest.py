"""Test-session settings: one intra-op thread per pytest-xdist worker (the CI machine has
2 cores and runs 2 workers), warnings from TorchRL's deprecations silenced."""

import os

import torch

torch.set_num_threads(int(os.environ.get("TORCHRL_FUNCTIONAL_TEST_THREADS", "1")))
os.environ.setdefault("RL_WARNINGS", "False")
