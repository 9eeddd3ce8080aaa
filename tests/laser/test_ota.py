"""One over-the-air round (laser.ota): the budget split, per-client energy and decoded blocks of a
pass; the public round call for a compressor's client and server sides."""

import math
import threading

import pytest
import torch
from torch.testing import assert_close

from channels import AWGNChannel, ChannelState, FadingChannel
from channels.fading import RayleighFading
from channels.power_control import TruncatedInversion
from laser import (
    LaserCompressor,
    NonFiniteNoiseError,
    TopKCompressor,
    ZSGDCompressor,
    transmit_blocks,
    transmit_round,
)
from laser.ota import _analog_pass


def uplink(channel, client_blocks, *, energy=None, snr_db=None, groups=None):
    """One analog pass of ``client_blocks`` (the unit under test), its record."""
    record, _ = _analog_pass(
        channel,
        list(range(len(client_blocks))),
        client_blocks,
        energy=energy,
        snr_db=snr_db,
        allocation="norm",
        budget_scale=None,
        groups=groups,
        processes=None,
    )
    return record


F64 = torch.float64


def _client_blocks(generator, num_clients=5, dims=(7, 30, 1)):
    return [
        [torch.randn(d, generator=generator, dtype=F64) * (b + 1) for b, d in enumerate(dims)]
        for _ in range(num_clients)
    ]


class RecordingChannel(AWGNChannel):
    """Keeps what each call of the channel got and returned, to check a whole round's per-block physics."""

    def transmit(self, blocks, energy, **kwargs):
        out = super().transmit(blocks, energy, **kwargs)
        self.calls.append((blocks, energy, out))
        return out


def test_block_budgets_sum_to_the_budget_and_the_largest_signal_of_each_block_meets_its_own(generator):
    channel = RecordingChannel(1.0, generator=generator)
    channel.calls = []
    client_blocks = _client_blocks(generator)
    out = uplink(channel, client_blocks, energy=50.0)
    assert len(channel.calls) == 1 and out.channel_uses == 7 + 30 + 1  # one call for the round
    _, budgets, round_out = channel.calls[0]  # [K, B]
    assert_close(budgets.sum(1), torch.full((5,), 50.0, dtype=F64))
    for b in range(3):
        signals = torch.stack([c[b] for c in client_blocks])
        largest = int(torch.linalg.vector_norm(signals, dim=1).argmax())
        assert_close(round_out.energy_used[largest, b], budgets[largest, b])  # equality
        assert bool((round_out.energy_used[:, b] <= budgets[:, b] * (1 + 1e-9)).all())
    assert_close(out.energy_used, round_out.energy_used.sum(1))
    assert bool((out.energy_used <= 50.0 * (1 + 1e-9)).all())


def test_single_client_spends_exactly_its_budget(generator):
    blocks = _client_blocks(generator, num_clients=1)
    out = uplink(AWGNChannel(1.0, generator=generator), blocks, energy=12.0)
    assert_close(out.energy_used, torch.tensor([12.0], dtype=F64))


def test_noiseless_uplink_decodes_the_exact_mean(generator):
    blocks = _client_blocks(generator)
    out = uplink(AWGNChannel(0.0), blocks, energy=1.0)
    for b, estimate in enumerate(out.estimates):
        assert_close(estimate, torch.stack([c[b] for c in blocks]).mean(0))


def test_snr_regime_energy_grows_with_channel_uses(generator):
    blocks = _client_blocks(generator, num_clients=1)
    out = uplink(AWGNChannel(2.0, generator=generator), blocks, snr_db=10.0)
    assert_close(out.energy_used, torch.tensor([38 * 2.0 * 10.0], dtype=F64))


def test_noise_energy_matches_the_papers_formula(generator):
    """sum_b d_b c_b^2 / (K^2 E_b), with c_b the largest client norm and E_b the norm-proportional
    share, computed here from scratch."""
    blocks = _client_blocks(generator)
    out = uplink(AWGNChannel(1.0, generator=generator), blocks, energy=5.0)
    norms = torch.tensor(
        [[float(torch.linalg.vector_norm(b)) for b in client] for client in blocks], dtype=F64
    )
    shares = 5.0 * (norms / norms.sum(1, keepdim=True)).mean(0)
    expected = sum(
        d * float(norms[:, b].max()) ** 2 / (25 * float(shares[b])) for b, d in enumerate((7, 30, 1))
    )
    assert math.isclose(out.noise_energy, expected, rel_tol=1e-9)


def test_grouped_blocks_get_the_grouped_allocation(generator):
    """With energy groups, each block's budget (read back from its noise variance) is the grouped split."""
    from laser.allocation import allocate_grouped_energy

    channel = RecordingChannel(1.0, generator=generator)
    channel.calls = []
    blocks = _client_blocks(generator, num_clients=3, dims=(5, 5, 5, 9))
    groups = ([0, 0, 0, 1], 1.0)
    out = uplink(channel, blocks, energy=40.0, groups=groups)
    budgets = channel.calls[0][1]
    norms = torch.stack([torch.stack([b.norm() for b in client]) for client in blocks])
    expected = allocate_grouped_energy(norms, torch.tensor([5, 5, 5, 9]), 40.0, "norm", *groups)
    assert_close(budgets, expected)
    # per-entry noise variance c_b^2 / (K^2 E_b), c_b the largest client norm of block b
    c = norms.max(0).values
    assert_close(out.noise_var, c**2 / (9 * expected[0]))


def test_a_pass_with_nothing_to_send_costs_nothing():
    """PowerSGD's second pass when no tensor is compressed: no channel use, no energy, nobody heard."""
    out = uplink(AWGNChannel(noise_var=1.0), [[], [], []], energy=10.0)
    assert out.estimates == [] and out.channel_uses == 0 and out.noise_energy == 0.0
    assert out.energy_used.tolist() == [0.0, 0.0, 0.0] and not out.active.any()


# ---------------------------------------------------------------------------------------------------------
# client weights: the server's estimate is the weighted mean; a channel realization drawn before the round

PARAMS = [torch.zeros(3, 4, dtype=F64), torch.zeros(5, dtype=F64)]
WEIGHTS = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=F64)


def _grads(generator, num_clients=4):
    return [
        [torch.randn(p.shape, generator=generator, dtype=F64) for p in PARAMS] for _ in range(num_clients)
    ]


def _weighted(grads, weights, keep=None):
    """sum_k w_k g_k / sum_k w_k per tensor, over the clients ``keep`` (default all)."""
    keep = [True] * len(grads) if keep is None else keep
    total = sum(float(w) for w, ok in zip(weights, keep) if ok)
    return [
        sum(float(w) * g[t] for g, w, ok in zip(grads, weights, keep) if ok) / total
        for t in range(len(PARAMS))
    ]


def _sides(method, num_clients=4):
    return method.make_server(PARAMS), [method.make_client(PARAMS, k) for k in range(num_clients)]


def _flat_state(gains):
    gains = torch.as_tensor(gains, dtype=torch.complex128).reshape(-1, 1, 1)
    return ChannelState(gains, gains, symbols_per_block=1)


def test_zsgd_over_a_noiseless_channel_with_weights_gives_the_weighted_mean(generator):
    grads = _grads(generator)
    server, clients = _sides(ZSGDCompressor())
    out = transmit_round(AWGNChannel(noise_var=0.0), server, clients, grads, energy=5.0, weights=WEIGHTS)
    for got, expected in zip(out.gradient, _weighted(grads, WEIGHTS), strict=True):
        assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert bool((out.energy_used <= 5.0 * (1 + 1e-9)).all())


def test_a_digital_method_with_weights_gives_the_weighted_mean_of_the_delivered_messages(generator):
    grads = _grads(generator)
    server, clients = _sides(TopKCompressor(1.0))  # the message is the whole gradient
    out = transmit_round(AWGNChannel(noise_var=1.0), server, clients, grads, energy=1e9, weights=WEIGHTS)
    assert out.active.all()
    for got, expected in zip(out.gradient, _weighted(grads, WEIGHTS), strict=True):
        assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_a_state_drawn_before_the_round_decides_who_is_heard_and_the_weights_renormalise(generator):
    """Client 1 in a deep fade of the given state: truncation silences it, the weighted mean is the
    other three's (analog); an outage, the weighted mean of the delivered messages (digital)."""
    grads = _grads(generator)
    state = _flat_state([1.0, 0.1, 1.2j, -0.9])
    keep = [True, False, True, True]
    channel = FadingChannel(RayleighFading(), TruncatedInversion(0.25), noise_var=0.0)
    server, clients = _sides(ZSGDCompressor())
    out = transmit_round(channel, server, clients, grads, energy=5.0, weights=WEIGHTS, state=state)
    assert out.active.tolist() == keep
    for got, expected in zip(out.gradient, _weighted(grads, WEIGHTS, keep), strict=True):
        assert_close(got, expected, rtol=1e-12, atol=1e-12)

    digital = FadingChannel(RayleighFading(), noise_var=1.0)
    server, clients = _sides(TopKCompressor(1.0))
    out = transmit_round(
        digital, server, clients, grads, energy=1e5, weights=WEIGHTS, state=_flat_state([1, 0, 1, 1])
    )
    assert out.active.tolist() == keep  # gain 0: an outage
    for got, expected in zip(out.gradient, _weighted(grads, WEIGHTS, keep), strict=True):
        assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert_close(clients[1].memory[0], grads[1][0].flatten())  # the undelivered message stays in its memory


def test_a_digital_round_where_nothing_arrives_estimates_zero(generator):
    server, clients = _sides(TopKCompressor(1.0))
    channel = AWGNChannel(noise_var=1.0)
    out = transmit_round(channel, server, clients, _grads(generator), energy=1e-6, weights=WEIGHTS)
    assert not out.active.any() and all(bool((g == 0).all()) for g in out.gradient)


class RecordingStates(AWGNChannel):
    """Keeps the state each pass went through."""

    def transmit(self, blocks, energy, **kwargs):
        self.states.append(kwargs["state"])
        return super().transmit(blocks, energy, **kwargs)


def test_the_given_state_serves_the_first_pass_and_later_passes_draw_their_own(generator):
    params = [torch.zeros(20, 30, dtype=F64)]
    method = LaserCompressor(rank=2, factors_per_round=2)  # PowerSGD: two passes
    server, clients = method.make_server(params), [method.make_client(params, k) for k in range(3)]
    channel = RecordingStates(noise_var=0.0)
    channel.states = []
    state = _flat_state([1.0, 1.0, 1.0])
    grads = [[torch.randn(20, 30, generator=generator, dtype=F64)] for _ in clients]
    transmit_round(channel, server, clients, grads, energy=1.0, state=state)
    assert len(channel.states) == 2
    assert channel.states[0].gains is state.gains and channel.states[1].gains is not state.gains


def test_the_given_state_is_spread_over_the_pass_and_must_be_the_participants(generator):
    grads = _grads(generator, num_clients=3)
    server, clients = _sides(ZSGDCompressor(), num_clients=3)
    channel = FadingChannel(RayleighFading(), noise_var=0.0, coherence_blocks=2)
    state = channel.realize(3, channel_uses=2)  # realized before the pass's length was known
    channel.transmit = _recording(channel.transmit, seen := [])
    transmit_round(channel, server, clients, grads, energy=1.0, state=state)
    assert seen[0].symbols_per_block == 5  # 17 real uses = 9 symbols, cut into 2 coherence blocks
    with pytest.raises(ValueError, match="state has 5 clients"):
        transmit_round(channel, server, clients, grads, energy=1.0, state=channel.realize(5, 17))
    with pytest.raises(TypeError, match="state must be a ChannelState"):
        transmit_round(channel, server, clients, grads, energy=1.0, state=state.gains)


def _recording(transmit, seen):
    def recorded(blocks, energy, **kwargs):
        seen.append(kwargs["state"])
        return transmit(blocks, energy, **kwargs)

    return recorded


@pytest.mark.parametrize(
    "weights, error",
    [(torch.ones(3), ValueError), ([1.0, 0.0, 1.0, 1.0], ValueError), (["x"] * 4, TypeError)],
)
def test_bad_weights_are_refused(weights, error, generator):
    server, clients = _sides(ZSGDCompressor())
    with pytest.raises(error, match="weights"):
        transmit_round(AWGNChannel(0.0), server, clients, _grads(generator), energy=1.0, weights=weights)


class _Process:
    """One of two threads standing in for processes (``laser.ota.Processes``): all-reduce and gather."""

    def __init__(self, rank, shared, num_clients=4, split=2):
        self.rank, self.shared = rank, shared
        self.num_clients = num_clients
        self.index = slice(0, split) if rank == 0 else slice(split, num_clients)

    def _exchange(self, value, combine):
        barrier, slots = self.shared
        slots[self.rank] = value
        barrier.wait()
        result = combine(slots)
        barrier.wait()
        return result

    def sum(self, value):
        return self._exchange(value, lambda slots: torch.stack(slots).sum(0))

    def min(self, value):
        return self._exchange(value, lambda slots: torch.stack(slots).min(0).values)

    def gather(self, value):
        return self._exchange(value, lambda slots: torch.cat(slots))


@pytest.mark.parametrize("method", [ZSGDCompressor(), TopKCompressor(1.0)], ids=["zsgd", "topk"])
def test_weights_split_over_processes_give_the_one_process_result(method, generator):
    grads = _grads(generator)
    state = _flat_state([1.0, 0.1, 1.2j, -0.9])  # client 1 silenced (analog) or in outage (digital)
    channel = FadingChannel(RayleighFading(), TruncatedInversion(0.25), noise_var=0.0)
    server, clients = _sides(method)
    energy = 1e5 if not server.analog else 5.0
    whole = transmit_round(channel, server, clients, grads, energy=energy, weights=WEIGHTS, state=state)
    shared, results = (threading.Barrier(2), [None, None]), [None, None]

    def process(rank):
        me = _Process(rank, shared)
        server, clients = _sides(method)
        mine = clients[me.index]
        blocks = [c.encode(g, server.broadcast()) for c, g in zip(mine, grads[me.index])]
        results[rank] = transmit_blocks(
            channel, server, mine, blocks, energy=energy, weights=WEIGHTS[me.index], state=state, processes=me
        )

    threads = [threading.Thread(target=process, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in results:
        for got, expected in zip(out.gradient, whole.gradient, strict=True):
            assert_close(got, expected, rtol=1e-12, atol=1e-12)
        assert torch.equal(out.active, whole.active)


def test_a_pass_whose_noise_variance_overflows_is_refused_with_its_own_error():
    # ||s||^2 / (E K^2) = 1e36 / (1e-6 * 4) overflows the float32 noise variance: nothing finite decodes
    compressor = ZSGDCompressor()
    compressor.setup([torch.zeros(100)], num_clients=2)
    huge = [[torch.full((100,), 1e17)] for _ in range(2)]
    with pytest.raises(NonFiniteNoiseError, match="pass 0: the effective noise variance is not finite"):
        transmit_round(AWGNChannel(noise_var=1.0), compressor.server, compressor.clients, huge, energy=1e-6)
