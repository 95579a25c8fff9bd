"""Every README code block that starts with an import is a complete program: run it."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [
    block for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if block.lstrip().startswith(("import", "from"))
]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README block {index}", "exec"), namespace)


def test_readme_has_runnable_blocks():
    assert len(BLOCKS) >= 1
