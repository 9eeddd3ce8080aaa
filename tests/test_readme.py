"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)
        if "w_true" in namespace:  # the FedAvg example over a fading channel converges
            assert float((namespace["w"] - namespace["w_true"]).norm()) < 1e-3
        if "transmit_round" in namespace:  # the compressed round: the model learns its target
            X = namespace["X"]
            assert float(namespace["loss"](X, X.sum(1, keepdim=True) / 4)) < 0.01


def test_the_readme_compressed_round_takes_at_most_ten_lines():
    """Imports, then the model and the data, are not counted (the first two paragraphs)."""
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if "transmit_round" in b
    )
    loop = block.split("\n\n")[2].split("\nprint(")[0]
    assert len([line for line in loop.splitlines() if line.strip()]) <= 10
