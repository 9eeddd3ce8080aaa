"""``laser configs`` describes every shipped config in one line, taken from its leading comment
(:func:`federated.config.shipped.describe`). The quickstart's was once empty: its first line opens
with ``Quickstart:``, which the reader took for a ``Run:``-style label (issue 29, item 5)."""

import pytest

from federated.config.shipped import describe, shipped_configs


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_has_a_description(name):
    description = describe(shipped_configs()[name])
    assert len(description.split()) >= 3, (name, description)


def test_a_label_ends_the_description_only_after_its_first_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("# Quickstart: MNIST-1D,\n# 16 clients.\n# Run: laser run\n# Vary: x\nseed: 0\n")
    assert describe(config) == "Quickstart: MNIST-1D, 16 clients."


def test_the_quickstart_gives_the_readme_energy_ratio():
    """The quickstart's comment and the README quote the same ratio (docs/results.md's energy to
    reach 90% of the noiseless accuracy: LASER 51, Z-SGD 300, about 6x)."""
    text = shipped_configs()["quickstart"].read_text(encoding="utf-8")
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "about 6x" in comment and "51 against 300" in comment and "10x" not in comment
