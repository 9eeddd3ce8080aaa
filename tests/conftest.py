import pytest
import torch


@pytest.fixture
def generator() -> torch.Generator:
    """A fixed-seed generator: every test draws its randomness from one of these."""
    return torch.Generator().manual_seed(1234)
