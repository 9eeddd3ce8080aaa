"""A simulation's client sides are made on first use (laser.compressor.ClientSides): registered
clients that never take part cost nothing, a side made for a refused call is forgotten, and a
compressor's state holds exactly the sides made, by client index."""

import pytest
import torch

from laser import LaserCompressor, TopKCompressor, ZSGDCompressor
from laser.compressor import ClientSides

PARAMS = [torch.zeros(12, 10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)]


def _grads(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in PARAMS]


def _laser(num_clients: int) -> LaserCompressor:
    method = LaserCompressor(rank=2, seed=3)
    method.setup(PARAMS, num_clients)
    return method


def test_sides_are_made_when_first_used_and_only_then():
    method = _laser(100_000)
    sides = method.clients
    assert isinstance(sides, ClientSides) and len(sides) == 100_000 and sides.made == {}
    method.encode(7, _grads(0))
    method.encode(99_999, _grads(1))
    assert sorted(sides.made) == [7, 99_999]
    assert sides[-1] is sides[99_999] and sides[7].index == 7
    assert sides[7].server_identity == method.server.identity  # made for this server
    assert all(m is not None for m in sides[7].memory)  # its error feedback, allocated by its encode
    assert [s.index for s in sides[5:8]] == [5, 6, 7]  # a slice makes its sides
    assert sorted(sides.made) == [5, 6, 7, 99_999]
    with pytest.raises(IndexError, match="client = 100000 is out of range"):
        sides[100_000]
    with pytest.raises(TypeError, match="client must be an integer"):
        sides["3"]


def test_iterating_makes_every_side_in_order():
    method = ZSGDCompressor()
    method.setup(PARAMS, 4)
    assert [side.index for side in method.clients] == [0, 1, 2, 3]
    assert sorted(method.clients.made) == [0, 1, 2, 3]


def test_a_side_made_for_a_refused_call_is_forgotten():
    method = _laser(10)
    bad = _grads(0)
    bad[1][0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        method.encode(4, bad)
    assert method.clients.made == {}  # client 4 never took part
    method.encode(4, _grads(1))
    with pytest.raises(ValueError, match="not finite"):
        method.encode(4, bad)
    assert sorted(method.clients.made) == [4]  # a side that took part stays


def test_the_state_holds_exactly_the_sides_made_and_restores_exactly_them():
    method = _laser(1000)
    for k in (3, 500, 999):
        method.encode(k, _grads(k))
    method.decode([b for b in method.encode(3, _grads(9))])  # a round's shared state moves on
    state = method.state_dict()
    assert sorted(state["clients"]) == [3, 500, 999]
    again = _laser(1000)
    again.encode(1, _grads(1))  # a side the state does not hold: gone after loading
    again.load_state_dict(state)
    assert sorted(again.clients.made) == [3, 500, 999]
    for k in (3, 500, 999):
        for a, b in zip(method.clients[k].memory, again.clients[k].memory, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)
    # the next encode gives the same blocks on both
    for a, b in zip(method.encode(500, _grads(5)), again.encode(500, _grads(5)), strict=True):
        assert torch.equal(a, b)


def test_an_older_state_with_every_clients_side_in_a_list_loads():
    method = TopKCompressor(fraction=0.2)
    method.setup(PARAMS, 3)
    for k in range(3):
        method.encode(k, _grads(k))
    listed = {
        "server": method.server.state_dict(),
        "clients": [method.clients[k].state_dict() for k in range(3)],
    }
    again = TopKCompressor(fraction=0.2)
    again.setup(PARAMS, 3)
    again.load_state_dict(listed)
    assert sorted(again.clients.made) == [0, 1, 2]
    assert all(
        torch.equal(a, b) for a, b in zip(method.clients[2].memory, again.clients[2].memory, strict=True)
    )


@pytest.mark.parametrize(
    "clients, match",
    [
        ({5: {}}, r"client states by index in 0\.\.2; got 1 client states \(indices \['5'\]\)"),
        (None, "no client states"),
    ],
)
def test_a_state_of_other_clients_is_refused_naming_them(clients, match):
    method = ZSGDCompressor()
    method.setup(PARAMS, 3)
    with pytest.raises(ValueError, match=match):
        method.load_state_dict({"server": method.server.state_dict(), "clients": clients})
