"""Local steps with adaptive scaling: the clients' frozen-D^ steps, the OASIS statistic, the two
Adam-type statistics, the second pass's accounting, and the settings refused before any work."""

import itertools

import pytest
import torch
from _quadratic import Quadratic, quadratic_clients

import federated.optim as optim_module
import federated.simulation as simulation_module
from federated.cli import main
from federated.clients import Clients
from federated.config import PrecondConfig, load_config
from federated.optim import Preconditioner
from federated.simulation import Simulation

F64 = torch.float64
A = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=F64)  # the quadratic's diagonal Hessian
W0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
C = torch.tensor([0.0, 1.0, 1.0, -1.0], dtype=F64)


def _clients(monkeypatch, steps: int, lr: float = 0.1) -> tuple[Quadratic, Clients]:
    return quadratic_clients(monkeypatch, A, W0, C, steps, lr)


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_local_steps_with_a_frozen_scale_equal_the_closed_form(monkeypatch, steps):
    """x <- x - eta g / D^ on 1/2 (w - c)^T diag(a) (w - c): w_H - c = (1 - eta a / D^)^H (w_0 - c), so
    the model change is (1 - (1 - eta a / D^)^H) (w_0 - c); the mean of g * g over the steps is
    the mean of (a (w_h - c))^2."""
    eta = 0.1
    scale = torch.tensor([0.25, 2.0, 1.0, 4.0], dtype=F64)
    model, clients = _clients(monkeypatch, steps, eta)
    _, (change,) = clients.local_update(0, scale=[scale], statistic="mean_of_squares")
    factor = 1 - eta * A / scale
    torch.testing.assert_close(change, (1 - factor**steps) * (W0 - C), rtol=1e-14, atol=1e-14)
    iterates = torch.stack([factor**h * (W0 - C) for h in range(steps)])
    assert clients.statistic is not None
    torch.testing.assert_close(clients.statistic[0], ((A * iterates) ** 2).mean(0), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(model.w.detach(), W0)  # the server's model is untouched


def test_the_oasis_estimate_is_the_diagonal_of_a_diagonal_hessian_for_every_probe(monkeypatch):
    """z * (A z) = diag(A) for every Rademacher z when A is diagonal (z_i^2 = 1), at every local
    iterate; and the server's D^ = max(alpha, |D|) is then diag(A) (above alpha)."""
    _, clients = _clients(monkeypatch, steps=3)
    for signs in itertools.product([-1.0, 1.0], repeat=4):
        z = torch.tensor(signs, dtype=F64)
        clients.local_update(0, scale=[torch.ones(4, dtype=F64)], statistic="hessian", probe=[z])
        assert clients.statistic is not None
        torch.testing.assert_close(clients.statistic[0], A, rtol=0, atol=1e-15)
    precond = Preconditioner(PrecondConfig(name="oasis", alpha=0.75), [W0], lr=0.1, local_steps=3)
    precond.update(statistic=[A])
    assert precond.scale()[0].tolist() == [0.75, 1.0, 2.0, 3.0]
    assert {int(v) for v in precond.probe()[0].tolist()} <= {-1, 1}


def test_the_oasis_probe_leaves_the_local_steps_unchanged(monkeypatch):
    """The double backward adds the same gradient as a plain backward: the change is plain SGD's."""
    _, clients = _clients(monkeypatch, steps=4)
    _, (plain,) = clients.local_update(0)
    _, (probed,) = clients.local_update(0, statistic="hessian", probe=[torch.ones(4, dtype=F64)])
    torch.testing.assert_close(probed, plain, rtol=0, atol=0)


TINY = [
    "data.name=mnist1d",
    "data.num_samples=400",
    "model.name=mlp",
    "model.width=8",
    "clients.num_clients=1",
    "clients.batch_size=8",
    "clients.lr=0.01",
    "clients.local_steps=1",
    "precision=fp64",
    "channel.name=noiseless",
    "compressor.name=zsgd",
    "device=cpu",
    "precond.name=adam",
    "precond.alpha=1e-6",
    "precond.beta=0.5",
]


def test_with_one_client_and_one_step_the_two_adam_statistics_coincide():
    """K = 1, H = 1, noiseless, uncompressed: D^ Delta / (lr H) is the client's gradient g, so the
    square of the mean is the mean of the squares; the second pass costs d more channel uses."""
    square_of_mean = Simulation(load_config(None, TINY))
    mean_of_squares = Simulation(load_config(None, [*TINY, "precond.statistic=mean_of_squares"]))
    d = sum(p.numel() for p in square_of_mean.params)
    for t in range(4):
        a, b = square_of_mean.round(t), mean_of_squares.round(t)
        for x, y in zip(square_of_mean.precond.state["D"], mean_of_squares.precond.state["D"], strict=True):
            torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-24)
        assert a["channel_uses"] == d and "precond_channel_uses" not in a
        assert b["channel_uses"] == 2 * d and b["precond_channel_uses"] == d
        assert len(b["noise_var"]) == 2 * len(a["noise_var"])
    for x, y in zip(square_of_mean.params, mean_of_squares.params, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-12)


def test_the_second_pass_spends_its_share_of_the_budget(monkeypatch):
    """The statistic's pass gets energy_fraction of each client's energy, the update's the rest, and
    the round's log sums both (AWGN, energy 100)."""
    sent = []
    original = simulation_module.transmit_blocks

    def spy(*args, **kwargs):
        options = args[4] if len(args) > 4 else kwargs.get("options")  # a PassOptions, or keywords
        sent.append(kwargs["energy"] if options is None else options.energy)
        return original(*args, **kwargs)

    monkeypatch.setattr(simulation_module, "transmit_blocks", spy)  # the update's pass
    monkeypatch.setattr(optim_module, "transmit_blocks", spy)  # the preconditioner's extra pass
    base = [o for o in TINY if not o.startswith(("channel.", "clients.num_clients", "precision"))]
    overrides = [*base, "clients.num_clients=2", "precond.name=oasis", "precond.energy_fraction=0.3"]
    sim = Simulation(load_config(None, overrides))
    record = sim.round(0)
    assert sent == [pytest.approx(70.0), pytest.approx(30.0)]
    assert 0 < record["energy_max"] <= 100.0 * (1 + 1e-9)
    assert record["precond_channel_uses"] == sum(p.numel() for p in sim.params)


@pytest.mark.parametrize(
    "override, key",
    [
        ("precond.alpha=0", "precond.alpha"),
        ("precond.alpha=-1e-3", "precond.alpha"),
        ("precond.energy_fraction=0", "precond.energy_fraction"),
        ("precond.energy_fraction=1", "precond.energy_fraction"),
        ("precond.beta=1", "precond.beta"),
        ("precond.beta=-0.1", "precond.beta"),
        ("clients.optimizer=adam", "precond.name"),
    ],
)
def test_bad_settings_exit_2_naming_the_key(tmp_path, capsys, override, key):
    argv = ["run", "mnist1d_local_adam_scaling", override, "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{key} = " in error
    assert not (tmp_path / "run").exists()
