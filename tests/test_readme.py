"""Every README code block that starts with ``import torch`` is a complete program: run it.
(Blocks that start otherwise are excerpts that refer to objects defined around them.)"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [
    block for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if block.lstrip().startswith("import torch")
]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README block {index}", "exec"), namespace)


def test_readme_has_runnable_blocks():
    assert len(BLOCKS) >= 2  # the ten-line example and the meta-gradient snippet
