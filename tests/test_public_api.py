"""The public names of ``channels`` and ``laser`` read well from ``help()``: every class has its own
docstring (not one inherited from ``nn.Module`` or an abstract base) and so does every public method
a user calls on it."""

import inspect

import pytest
import torch

import channels
import laser

PUBLIC = [(module, name) for module in (channels, laser) for name in module.__all__]


@pytest.mark.parametrize("module, name", PUBLIC, ids=[f"{m.__name__}.{n}" for m, n in PUBLIC])
def test_every_public_name_documents_itself(module, name):
    obj = getattr(module, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants (ALLOCATIONS, FADING_MODELS)
    assert obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__, (
        f"{name} has no docstring of its own"
    )
    if inspect.isclass(obj) and issubclass(obj, torch.nn.Module):
        forward = next(c.__dict__["forward"] for c in obj.__mro__ if "forward" in c.__dict__)
        assert forward.__doc__, f"{name}.forward (what calling it does) has no docstring"
