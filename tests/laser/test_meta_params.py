"""Meta-device parameters (issue 27, item 5): ``check_params(..., data=True)`` refuses them, naming
the argument and saying a meta tensor has no data, for the methods that keep state on the
parameters' device; by default they pass, as counting a model's channel uses needs only shapes."""

import pytest
import torch

from laser import LaserCompressor
from laser.compressor import check_params


def test_check_params_with_data_refuses_a_meta_tensor_naming_it():
    params = [torch.zeros(4, 4), torch.empty(4, device="meta")]
    with pytest.raises(ValueError, match=r"^params\[1\] is a meta tensor, which has no data; move the model"):
        check_params(params, data=True)
    with pytest.raises(ValueError, match=r"^model\[0\] is a meta tensor"):
        check_params([torch.empty(4, 4, device="meta")], "model", data=True)
    assert check_params(params[:1], data=True) == params[:1]


def test_meta_parameters_still_count_channel_uses_by_default():
    """Shapes only, no memory: what tests/federated/models/test_paper_models.py does for GPT-2."""
    with torch.device("meta"):
        params = [torch.empty(64, 32), torch.empty(32)]
    assert check_params(params) == params
    method = LaserCompressor(rank=2)
    method.setup(params, num_clients=1)
    assert method.server.channel_uses(0) > 0
