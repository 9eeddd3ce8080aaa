"""Registered clients cost nothing until they take part: a run's compressor sides (and so their
error-feedback memories) are made on first participation, a checkpoint holds exactly those and a
resume restores exactly those, and the memory check counts the clients that can take part."""

import pytest
import torch

from federated import ConfigError, load_config
from federated.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from federated.simulation import Simulation

SAMPLED = [
    "clients.num_clients=400",
    "clients.per_round=4",
    "clients.batch_size=8",
    "rounds=8",
    "eval_every=1000",
]


def _run(config, rounds, sim=None):
    sim = sim or Simulation(config)
    for _ in range(rounds):
        sim.round()
    return sim


def _took_part(sim) -> list[int]:
    return [k for k, count in enumerate(sim.participation()) if count]


def test_memories_are_allocated_for_exactly_the_clients_that_took_part():
    sim = _run(load_config("configs/mnist1d_laser.yaml", SAMPLED), 5)
    made = sim.compressor.clients.made
    assert 4 < len(made) <= 20  # 5 rounds of 4 of 400
    assert sorted(made) == _took_part(sim)
    for side in made.values():  # LASER's memories: one per group of compressed matrices, all set
        assert side.memory and all(isinstance(m, torch.Tensor) for m in side.memory)


def test_a_resume_restores_exactly_the_allocated_memories(tmp_path):
    config = load_config("configs/mnist1d_laser.yaml", SAMPLED)
    sim = _run(config, 4)
    save_checkpoint(tmp_path / "checkpoint.pt", sim.state_dict())
    resumed = Simulation(config)
    state = resumed.check_state(
        load_checkpoint(tmp_path / "checkpoint.pt", "cpu"), tmp_path / "checkpoint.pt"
    )
    resumed.load_state_dict(state)
    assert sorted(resumed.compressor.clients.made) == sorted(sim.compressor.clients.made) == _took_part(sim)
    for k, side in sim.compressor.clients.made.items():
        again = resumed.compressor.clients.made[k]
        assert all(torch.equal(a, b) for a, b in zip(side.memory, again.memory, strict=True))
    # and the run goes on as if never stopped
    assert [sim.round() for _ in range(3)] == [resumed.round() for _ in range(3)]


def test_a_checkpoint_holding_a_client_the_run_does_not_have_is_refused(tmp_path):
    config = load_config("configs/mnist1d_laser.yaml", SAMPLED)
    state = _run(config, 1).state_dict()
    state["compressor"]["clients"][400] = next(iter(state["compressor"]["clients"].values()))
    fresh = Simulation(config)
    with pytest.raises(CheckpointError, match=r"\['clients'\] holds index 400, expected 0\.\.399"):
        fresh.check_state(state, tmp_path / "checkpoint.pt")
    state = _run(config, 1).state_dict()
    (k,) = list(state["compressor"]["clients"])[:1]
    state["compressor"]["clients"][k]["memory"] = [torch.zeros(3)]
    with pytest.raises(
        CheckpointError, match=rf"\['clients'\]\[{k}\]\['memory'\] holds 1 entries, expected 3"
    ):
        fresh.check_state(state, tmp_path / "checkpoint.pt")


def test_a_hundred_thousand_registered_clients_cost_what_the_participants_do():
    """The tiny GPT with 10^5 registered clients, 10 a round: the memory check counts the clients
    that can take part (10 x 2 rounds), not 10^5 (which would ask for 48 GB), and only the
    participants' sides exist."""
    overrides = ["clients.num_clients=100000", "clients.per_round=10", "rounds=2", "eval_every=1000"]
    sim = _run(load_config("configs/pydoc_gpt_laser.yaml", overrides), 2)
    assert 10 <= len(sim.compressor.clients.made) <= 20
    assert sorted(sim.compressor.clients.made) == _took_part(sim)


def test_the_memory_check_counts_the_clients_that_can_take_part(monkeypatch):
    import federated.simulation as simulation

    monkeypatch.setattr(simulation, "_available_bytes", lambda device: 50_000_000)  # 50 MB
    # 1,000 registered, 4 a round for 8 rounds: 32 can take part; the CNN's buffers fit
    Simulation(load_config("configs/mnist1d_laser.yaml", [*SAMPLED, "clients.num_clients=1000"]))
    # every one of the 1,000 in every round: 1,003 buffers of the CNN's 0.1 MB do not
    every = [*SAMPLED, "clients.num_clients=1000", "clients.per_round=1000"]
    with pytest.raises(ConfigError, match=r"model = .*\(1000 clients that can take part \+ 3\)"):
        Simulation(load_config("configs/mnist1d_laser.yaml", every))
