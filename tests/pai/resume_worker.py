"""Fresh-process half of the save/resume test: build the same group with other initial
weights, load the checkpoint, continue training, save what the test compares.

    python -m tests.pai.resume_worker CHECKPOINT RESULT OUT_DIR
"""

import sys
from pathlib import Path

import torch

from tests.pai.helpers import resume_continue, resume_group


def main(checkpoint: str, result: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    group, loss = resume_group(Path(out_dir), seed=123)  # weights differ until loaded
    group.load_checkpoint(checkpoint)
    torch.save(resume_continue(group, loss), result)


if __name__ == "__main__":
    main(*sys.argv[1:4])
