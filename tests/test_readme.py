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


def test_the_set_up_says_first_how_to_install_the_cpu_build():
    """Issue 29, item 6: before its first command, the set-up says in one line how a machine without
    an NVIDIA GPU gets PyTorch's CPU build (the default pulls a 5.8 GB CUDA build); put where it says,
    the line makes both commands install torch from the CPU index before the project."""
    setup = README.read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    before, rest = setup.split("```bash\n", 1)
    (hint,) = [p for p in before.split("\n\n") if "NVIDIA" in p]
    prefix = re.search(r"`(pip install torch --index-url https://download\.pytorch\.org/whl/cpu &&)`", hint)
    assert prefix and re.search(r"before\s+`pip install -e`", hint)
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", "```bash\n" + rest, flags=re.S)[:2]]
    assert [c.count("pip install -e") for c in commands] == [1, 1]
    for command in commands:
        patched = command.replace("pip install -e", prefix.group(1) + " pip install -e")
        assert patched.index("whl/cpu") < patched.index("pip install -e")
    # the sizes it quotes are the measured ones of the paragraph below
    sizes = re.search(r"(\d\.\d) GB installed instead of (\d\.\d) GB", hint)
    assert sizes and f"takes about {sizes.group(2)} GB" in setup.replace("\n", " ")
    assert f"takes {sizes.group(1)} GB" in setup.replace("\n", " ")
