"""Who takes part in a round: each participant's own channel in every pass (its path loss), client
sides that belong to one server, clients given as indices when they live apart from the server,
what is given back when a client is not heard, and the round's energy shared by the passes."""

import io

import pytest
import torch
from torch.testing import assert_close

from channels import AWGNChannel, FadingChannel
from channels.fading import PathLoss, RayleighFading
from channels.power_control import TruncatedInversion
from laser import (
    LaserCompressor,
    TopKCompressor,
    ZSGDCompressor,
    transmit_blocks,
    transmit_round,
)

F64 = torch.float64


def _powersgd(rank=2):
    """PowerSGD as published: LASER's factors, both sides each round, two channel passes."""
    return LaserCompressor(rank, factors_per_round=2)


PARAMS = [torch.zeros(12, 8, dtype=F64), torch.zeros(8, dtype=F64)]


def _grads(generator, count):
    return [[torch.randn(p.shape, generator=generator, dtype=F64) for p in PARAMS] for _ in range(count)]


class _Realizations(FadingChannel):
    """Keeps the arguments of every realization."""

    def realize(self, num_clients, channel_uses=None, generator=None, dtype=torch.complex64, *, clients=None):
        self.calls.append((num_clients, None if clients is None else torch.as_tensor(clients).tolist()))
        return super().realize(num_clients, channel_uses, generator, dtype, clients=clients)


# ----------------------------------------------------------------- every pass: the participants' own
def test_a_later_pass_realizes_the_participants_with_their_own_path_loss(generator):
    """Clients 5, 2, 7 of 8 take part (sampled after seeing the channel) with a two-pass method: the
    second pass drew realize(3) before, i.e. 3 new path losses, participant j taking row j. Now it
    realizes clients 5, 2, 7 of the run's 8 and the large-scale gains stay those of the run."""
    channel = _Realizations(RayleighFading(), path_loss=PathLoss("umi_los"), noise_var=1.0)
    channel.calls = []
    channel.generator.manual_seed(0)
    method = _powersgd()
    participants = [5, 2, 7]
    server = method.make_server(PARAMS)
    clients = [method.make_client(PARAMS, k) for k in participants]
    beta = None
    for round_ in range(3):
        state = channel.realize(8, dtype=torch.complex128).clients(participants)  # for the sampler
        beta = channel.large_scale.clone() if beta is None else beta
        transmit_round(channel, server, clients, _grads(generator, 3), energy=100.0, state=state)
        assert channel.num_clients == 8 and torch.equal(channel.large_scale, beta), f"round {round_}"
    assert channel.calls[1] == (None, participants)  # the second pass of the first round


def test_a_pass_of_some_clients_before_any_path_loss_is_drawn_is_refused():
    """Without the run's clients realized once, the channel cannot know how many path losses to draw."""
    channel = FadingChannel(RayleighFading(), path_loss=PathLoss(), noise_var=1.0)
    method = ZSGDCompressor()
    server, clients = method.make_server(PARAMS), [method.make_client(PARAMS, k) for k in (3, 6)]
    with pytest.raises(ValueError, match=r"realize every client once first"):
        transmit_round(channel, server, clients, _grads(torch.Generator(), 2), energy=1.0)


# ------------------------------------------------------------------------------- the sides' identity
def test_the_same_client_object_twice_in_a_round_is_refused(generator):
    method = LaserCompressor(rank=2)
    server, client = method.make_server(PARAMS), method.make_client(PARAMS, 0)
    with pytest.raises(ValueError, match=r"clients\[0\] and clients\[1\] are the same client object"):
        transmit_round(AWGNChannel(0.0), server, [client, client], _grads(generator, 2), energy=1.0)
    assert all(m is None for m in client.memory)  # refused before anything was encoded


def test_two_clients_of_one_index_are_refused(generator):
    method = ZSGDCompressor()
    server = method.make_server(PARAMS)
    clients = [method.make_client(PARAMS, 1), method.make_client(PARAMS, 1)]
    with pytest.raises(ValueError, match=r"are both client 1"):
        transmit_round(AWGNChannel(0.0), server, clients, _grads(generator, 2), energy=1.0)


def test_a_client_side_of_another_server_is_refused(generator):
    """A second run's server with the first run's clients (their error feedback holds the first
    run's updates) ran silently; a side belongs to the server of its first round (or its setup)."""
    method = LaserCompressor(rank=2)
    first = method.make_server(PARAMS)
    clients = [method.make_client(PARAMS, k) for k in range(2)]
    transmit_round(AWGNChannel(1.0), first, clients, _grads(generator, 2), energy=10.0)
    second = method.make_server(PARAMS)
    with pytest.raises(ValueError, match=r"clients\[0\] \(client 0\) belongs to another server"):
        transmit_round(AWGNChannel(1.0), second, clients, _grads(generator, 2), energy=10.0)
    method.setup(PARAMS, 2)
    with pytest.raises(ValueError, match="belongs to another server"):  # made for the setup's server
        transmit_round(AWGNChannel(1.0), first, method.clients, _grads(generator, 2), energy=10.0)


def test_the_identity_travels_in_the_state_dicts():
    method = LaserCompressor(rank=2)
    method.setup(PARAMS, 2)
    method.clients[1]  # made on first use
    state = method.state_dict()
    assert state["clients"][1]["index"] == 1 and state["clients"][1]["server"] == method.server.identity
    again = LaserCompressor(rank=2)
    again.setup(PARAMS, 2)
    again.load_state_dict(state)  # a resumed run: the same server, its clients still its own
    assert again.server.identity == method.server.identity
    assert all(c.server_identity == method.server.identity for c in again.clients)


# ----------------------------------------------------------------------- clients that live apart
def _over_the_network(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)


@pytest.mark.parametrize("method", [LaserCompressor(rank=2), ZSGDCompressor()], ids=["laser", "zsgd"])
def test_clients_given_as_indices_give_the_round_of_client_objects_bit_for_bit(method, generator):
    """The recipe for clients apart from the server: the server has their blocks (encoded with its
    broadcast, which crossed the network) and their indices; each client keeps what it was not
    heard in from its row of ``result.heard``. Under truncation some blocks go unheard; three
    rounds give the same decoded gradients and the same error-feedback memories as the round that
    holds the client objects with ``keep_unheard=True``."""

    def channel():
        return FadingChannel(
            RayleighFading(), TruncatedInversion(0.8), 1.0, generator=torch.Generator().manual_seed(5)
        )

    participants = [0, 3, 5]
    server_a, server_b = method.make_server(PARAMS), method.make_server(PARAMS)
    live = [method.make_client(PARAMS, k) for k in participants]
    apart = {k: method.make_client(PARAMS, k) for k in participants}  # each on its own machine
    uplink_a, uplink_b = channel(), channel()
    unheard = 0
    for _ in range(3):
        grads = _grads(generator, len(participants))
        a = transmit_round(uplink_a, server_a, live, grads, energy=5.0, keep_unheard=True)
        shared = _over_the_network(server_b.broadcast())
        sent = {k: apart[k].encode(g, shared) for k, g in zip(participants, grads)}
        b = transmit_blocks(
            uplink_b, server_b, participants, [_over_the_network(sent[k]) for k in participants], energy=5.0
        )
        for j, k in enumerate(participants):
            apart[k].keep_unheard(sent[k], _over_the_network(b.heard[j]))
        unheard += int((~b.heard).sum())
        assert all(torch.equal(x, y) for x, y in zip(a.gradient, b.gradient))
        assert torch.equal(a.heard, b.heard)
    assert unheard > 0  # the case the recipe is for did happen
    if isinstance(method, LaserCompressor):
        for x, k in zip(live, participants):
            assert all(torch.equal(u, v) for u, v in zip(x.memory, apart[k].memory))


def test_clients_as_indices_are_refused_where_the_server_needs_their_sides(generator):
    blocks = [[torch.zeros(4)]]
    with pytest.raises(ValueError, match="needs the client sides for 2 passes"):
        transmit_blocks(AWGNChannel(0.0), _powersgd().make_server(PARAMS), [0], blocks, energy=1.0)
    with pytest.raises(ValueError, match="message sizes"):
        transmit_blocks(AWGNChannel(0.0), TopKCompressor(0.5).make_server(PARAMS), [0], blocks, energy=1.0)
    server = ZSGDCompressor().make_server(PARAMS)
    with pytest.raises(ValueError, match=r"keep_unheard=True needs the client objects.*keep_unheard"):
        transmit_blocks(AWGNChannel(0.0), server, [0], blocks, energy=1.0, keep_unheard=True)
    with pytest.raises(TypeError, match="not a mix"):
        transmit_blocks(
            AWGNChannel(0.0), server, [0, ZSGDCompressor().make_client(PARAMS, 1)], blocks * 2, energy=1.0
        )


# --------------------------------------------------------------------------------- keep_unheard
def test_keep_unheard_gives_back_exactly_the_blocks_that_were_not_heard(generator):
    """Client 1 in a deep fade is silenced by truncation in every block: its whole message goes back
    into its error feedback; the heard clients' memories are those of a round without keep_unheard."""
    method = LaserCompressor(rank=2)
    gains = torch.tensor([1.0, 0.05, 1.3], dtype=torch.complex128).reshape(3, 1, 1)
    state_kind = type(AWGNChannel(0.0).realize(1))
    results = {}
    for keep in (False, True):
        server, clients = method.make_server(PARAMS), [method.make_client(PARAMS, k) for k in range(3)]
        channel = FadingChannel(RayleighFading(), TruncatedInversion(0.1), noise_var=0.0)
        grads = _grads(torch.Generator().manual_seed(1), 3)
        out = transmit_round(
            channel, server, clients, grads, energy=10.0, keep_unheard=keep, state=state_kind(gains, gains, 1)
        )
        results[keep] = (out, clients)
    out, kept = results[True]
    _, lost = results[False]
    assert out.heard.tolist() == [[True, True], [False, False], [True, True]]
    for k in (0, 2):
        assert all(torch.equal(u, v) for u, v in zip(kept[k].memory, lost[k].memory))
    sent = [m_lost - m_kept for m_lost, m_kept in zip(lost[1].memory, kept[1].memory)]  # what it kept
    assert all(float(s.abs().max()) > 0 for s in sent)


def test_keep_unheard_of_a_client_side_checks_its_arguments():
    client = ZSGDCompressor().make_client(PARAMS, 0)
    with pytest.raises(ValueError, match="heard has 1 entries; blocks has 2"):
        client.keep_unheard([torch.zeros(96), torch.zeros(8)], [True])


# ------------------------------------------------------------------- the round's energy, all passes
def test_the_passes_of_a_round_share_its_energy_budget(generator):
    """PowerSGD's two passes spend at most the round's budget together (pass p its share of it, in
    proportion to its channel uses); the tightest client of each pass spends its share exactly."""
    method = _powersgd()
    server, clients = method.make_server(PARAMS), [method.make_client(PARAMS, k) for k in range(4)]
    out = transmit_round(AWGNChannel(1.0), server, clients, _grads(generator, 4), energy=100.0)
    shares = server.pass_shares()
    assert len(out.passes) == 2 and abs(sum(shares) - 1) < 1e-12 and min(shares) < 1
    for record, share in zip(out.passes, shares):
        assert bool((record.energy_used <= 100.0 * share * (1 + 1e-9)).all())
        assert_close(float(record.energy_used.max()), 100.0 * share, rtol=1e-9, atol=0)
    assert bool((out.energy_used <= 100.0 * (1 + 1e-9)).all())


# ------------------------------------------------------------------------------ gradients' count
def test_transmit_round_refuses_more_gradients_than_clients(generator):
    """Two clients and three clients' gradients: the third was dropped without a word."""
    method = ZSGDCompressor()
    server, clients = method.make_server(PARAMS), [method.make_client(PARAMS, k) for k in range(2)]
    with pytest.raises(ValueError, match=r"grads holds 3 clients' tensors; clients has 2"):
        transmit_round(AWGNChannel(0.0), server, clients, _grads(generator, 3), energy=1.0)
    lazy = iter(_grads(generator, 3))  # a generator: found out when it yields a third
    with pytest.raises(ValueError, match=r"grads holds more than 2 clients' tensors"):
        transmit_round(AWGNChannel(0.0), server, clients, lazy, energy=1.0)
    with pytest.raises(ValueError, match=r"grads holds 1 clients' tensors; clients has 2"):
        transmit_round(AWGNChannel(0.0), server, clients, iter(_grads(generator, 1)), energy=1.0)


def test_a_client_refuses_the_state_of_another_index(generator):
    """Client 0's error feedback loaded into client 1 corrupted it silently."""
    method = LaserCompressor(rank=2)
    method.setup(PARAMS, 2)
    transmit_round(AWGNChannel(1.0), method.server, method.clients, _grads(generator, 2), energy=10.0)
    with pytest.raises(ValueError, match="state was saved by client 0; this is client 1"):
        method.clients[1].load_state_dict(method.clients[0].state_dict())


def test_a_client_state_saved_before_sides_recorded_who_they_are_loads_with_a_warning(generator):
    method = LaserCompressor(rank=2)
    method.setup(PARAMS, 1)
    transmit_round(AWGNChannel(1.0), method.server, method.clients, _grads(generator, 1), energy=10.0)
    old = {k: v for k, v in method.clients[0].state_dict().items() if k not in ("index", "server")}
    fresh = LaserCompressor(rank=2).make_client(PARAMS, 0)
    with pytest.warns(UserWarning, match="saved before clients recorded their index and server"):
        fresh.load_state_dict(old)
    assert all(torch.equal(u, v) for u, v in zip(fresh.memory, method.clients[0].memory) if u is not None)


def test_the_documented_recipe_for_clients_apart_runs_as_written(capsys):
    """docs/apart.md's round: it runs, and some blocks go unheard (the case the recipe is for)."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "apart.md"
    (block,) = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    namespace: dict = {}
    exec(compile(block, str(page), "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("round ") for line in lines)
    heard = [int(line.split("heard ")[1].split(" of")[0]) for line in lines]
    assert min(heard) < 3 * len(namespace["params"])  # truncation silenced someone at least once
