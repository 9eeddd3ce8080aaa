"""The digital methods' uplink in physical units (channels.nr): the NR link's block errors against
its SINR, link adaptation's block-error rate (inner loop with perfect CSI, outer loop under CSI
error), retransmissions in air time and energy, and what a lost transport block means for a message."""

from __future__ import annotations

import math

import pytest
import torch

from channels import OFDMAUplink, OuterLoop
from channels.nr import nr_link_tables
from laser import PassOptions, transmit_blocks
from laser.digital import QSGDCompressor, TopKCompressor

SLOT = 0.5e-3  # 30 kHz subcarriers


def uplink(num_clients: int = 16, **kwargs: object) -> OFDMAUplink:
    """16 clients sharing 51 resource blocks (3 each), 13 data symbols a slot, 10 mW, SNR per RE =
    |h|^2 (snr_scale 1)."""
    options: dict = dict(
        slot_s=SLOT,
        data_symbols=13,
        resource_blocks=51,
        power_w=torch.full((num_clients,), 0.01),
        snr_scale=torch.ones(num_clients),
    )
    options.update(kwargs)
    return OFDMAUplink(**options)


def rayleigh_gains(
    rounds: int, clients: int, mean_db: float, seed: int, spread_db: float = 15
) -> torch.Tensor:
    """|h|^2 of Rayleigh fading around mean SNRs spread over mean_db +- spread_db."""
    g = torch.Generator().manual_seed(seed)
    means = torch.linspace(mean_db - spread_db, mean_db + spread_db, clients, dtype=torch.float64)
    means = torch.pow(10.0, means / 10)
    return means * torch.empty(rounds, clients, dtype=torch.float64).exponential_(generator=g)


def test_block_error_rate_falls_with_sinr_at_every_mcs() -> None:
    tables = nr_link_tables()
    sinr_db = torch.arange(-12.0, 30.0, 0.25)
    for mcs in range(28):
        bler = tables.get_bler(mcs, 1, 0, 1000, torch.pow(10.0, sinr_db / 10)).double()
        assert bool(torch.isfinite(bler).all()), f"MCS {mcs} has no table"
        assert bool((bler.diff() <= 1e-6).all()), f"MCS {mcs}: BLER rises with SINR"
        assert float(bler[0]) > 0.9 and float(bler[-1]) < 1e-3, f"MCS {mcs}: no waterfall in -12..30 dB"


def test_nr_link_failures_fall_with_sinr_at_a_fixed_mcs() -> None:
    """Realised: the scheduler believes the SINR is 20 dB (MCS fixed by it), the true SINR rises."""
    link = uplink(16, harq_retx=0)
    g = torch.Generator().manual_seed(0)
    true_db = torch.linspace(10.0, 25.0, 16, dtype=torch.float64)
    known = torch.full((16,), 100.0, dtype=torch.float64)
    failed = torch.zeros(16, dtype=torch.float64)
    for _ in range(20):  # 21 blocks a client and round
        out = link.send(
            torch.full((16,), 50_000.0), torch.arange(16), torch.pow(10.0, true_db / 10), known, g
        )
        failed += (out.lost_blocks.double() / out.blocks.double()) / 20
    assert len(set(out.mcs.tolist())) == 1
    assert float(failed[0]) > 0.999 and float(failed[-1]) < 0.01 and 0.05 < float(failed[6:10].mean()) < 0.95
    assert bool((failed.diff() <= 0.05).all()), failed  # falls, within the draws' spread


def test_inner_loop_with_perfect_csi_keeps_the_target() -> None:
    link = uplink(16, harq_retx=0, bler_target=0.1)
    gains = rayleigh_gains(60, 16, 10.0, seed=1)
    g = torch.Generator().manual_seed(2)
    sent = failed = 0
    for gain in gains:
        out = link.send(torch.full((16,), 20_000.0), torch.arange(16), gain, gain, g)
        sent += int(out.transmissions.sum())
        failed += int(out.transmissions.sum() - (out.blocks - out.lost_blocks)[out.scheduled].sum())
    rate = failed / sent
    assert sent > 5000
    assert rate <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / sent), rate
    assert rate > 0.01  # it does use its errors: the highest MCS that meets the target


def test_outer_loop_under_csi_error_converges_to_the_target() -> None:
    """The scheduler's SINR is 3 dB optimistic plus 2 dB of log-normal error; after 100 rounds of
    warm-up the share of failed transmissions over the next 400 is within 0.02 of the target. The
    clients' mean SNRs (3..11 dB) keep their MCS inside the table: at MCS 27 (or 0) no offset can
    bring the failures up (or down) to the target."""
    link = uplink(16, harq_retx=3, bler_target=0.1, outer_loop=True, delta_up=0.5)
    gains = rayleigh_gains(500, 16, 7.0, seed=3, spread_db=4.0)
    g, noise = torch.Generator().manual_seed(4), torch.Generator().manual_seed(5)
    sent = failed = 0
    inner = uplink(16, harq_retx=3, bler_target=0.1)
    inner_sent = inner_failed = 0
    for t, gain in enumerate(gains):
        error_db = 3.0 + 2.0 * torch.randn(16, generator=noise, dtype=torch.float64)
        known = gain * torch.pow(10.0, error_db / 10)
        out = link.send(torch.full((16,), 20_000.0), torch.arange(16), gain, known, g)
        if t >= 100:
            sent += int(out.transmissions.sum())
            failed += _failed(out)
            base = inner.send(torch.full((16,), 20_000.0), torch.arange(16), gain, known, g)
            inner_sent += int(base.transmissions.sum())
            inner_failed += _failed(base)
    assert abs(failed / sent - 0.1) <= 0.02, failed / sent
    assert inner_failed / inner_sent > 0.2  # without the outer loop the bias shows
    assert float(link.outer.offset_db.mean()) > 1.5  # it learned most of the bias


def _failed(out) -> int:  # type: ignore[no-untyped-def]
    """Failed transmissions: all of them but one a delivered block."""
    return int(out.transmissions.sum() - (out.blocks - out.lost_blocks)[out.scheduled].sum())


def test_retransmissions_cost_air_time_and_energy() -> None:
    gain = torch.pow(10.0, torch.linspace(0, 20, 16, dtype=torch.float64) / 10)
    known = gain * 4  # 6 dB optimistic: blocks fail and are sent again
    bits = torch.full((16,), 30_000.0)
    outs = {}
    for retx in (0, 3):
        link = uplink(16, harq_retx=retx, power_w=torch.linspace(0.001, 0.2, 16))
        out = link.send(bits, torch.arange(16), gain, known, torch.Generator().manual_seed(7))
        on = out.scheduled
        assert torch.equal(out.air_time_s, out.transmissions.double() * SLOT)
        assert torch.allclose(out.energy_j, link.power_w * out.air_time_s)
        assert torch.equal(out.channel_uses, 2.0 * out.transmissions.double() * 3 * 12 * 13)
        assert bool((out.transmissions[on] >= out.blocks[on]).all()) and bool(on.any())
        assert bool((out.transmissions[on] <= (1 + retx) * out.blocks[on]).all())
        tables = link.tables(3 * 12 * 13)
        for k in range(16):  # the lost ranges are whole transport blocks of the message, in order
            spans = out.lost[k]
            assert len(spans) == int(out.lost_blocks[k]) or not bool(on[k])
            assert all(0 <= a < b <= 30_000 for a, b in spans) and spans == sorted(spans)
            if bool(on[k]):  # a block is one of the table's transport-block sizes (the last: cut)
                sizes = set(tables.tbs.tolist())
                assert all(b - a in sizes or b == 30_000 for a, b in spans), spans
        outs[retx] = out
    none, some = outs[0], outs[3]
    assert torch.equal(none.transmissions[none.scheduled], none.blocks[none.scheduled])
    assert int(some.transmissions.sum()) > int(none.transmissions.sum())
    assert int(some.lost_blocks.sum()) < int(none.lost_blocks.sum())
    assert float(some.energy_j.sum()) > float(none.energy_j.sum())


def test_an_unschedulable_client_sends_nothing() -> None:
    link = uplink(2)
    gain = torch.tensor([1e-3, 100.0], dtype=torch.float64)  # -30 dB: below MCS 0
    out = link.send(torch.tensor([5000.0, 5000.0]), torch.arange(2), gain, gain, torch.Generator())
    assert out.scheduled.tolist() == [False, True]
    assert int(out.transmissions[0]) == 0 and float(out.energy_j[0]) == 0 and out.lost[0] == [(0, 5000)]
    assert out.delivered.tolist() == [False, not out.lost[1]]


def test_shannon_uplink_is_the_capacity_of_the_share() -> None:
    link = uplink(4, link="shannon")
    gain = torch.tensor([1.0, 3.0, 15.0, 0.5], dtype=torch.float64)
    bits = torch.tensor([1000.0, 1000.0, 0.0, 468.0])
    out = link.send(bits, torch.arange(4), gain, gain, None)
    per_slot = 12 * 12 * 13 * torch.log2(1 + gain)  # 51 // 4 = 12 resource blocks each
    assert out.prbs == 12
    assert torch.allclose(out.air_time_s, bits / per_slot * SLOT)
    assert float(out.air_time_s[2]) == 0 and out.delivered.all()
    # the NR link's scheduler: below MCS 0's SINR for the target (about -6 dB), an outage
    gains = torch.tensor([1e-9, 1e-3, 1.0], dtype=torch.float64)
    dead = link.send(torch.full((3,), 10.0), torch.arange(3), gains, gains, None)
    assert dead.scheduled.tolist() == [False, False, True] and dead.lost[:2] == [[(0, 10)], [(0, 10)]]
    assert dead.air_time_s[:2].tolist() == [0, 0] and dead.energy_j[:2].tolist() == [0, 0]
    nr = uplink(4).send(torch.full((3,), 10.0), torch.arange(3), gains, gains, torch.Generator())
    assert nr.scheduled.tolist() == dead.scheduled.tolist()


def test_outer_loop_steps() -> None:
    loop = OuterLoop(3, bler_target=0.2, delta_up=1.0)
    offset = loop.offset_db
    sent = torch.tensor([True, False, True])
    offset = loop.feedback(offset, torch.tensor([True, False, False]), sent)
    assert offset.tolist() == pytest.approx([-0.25, 0.0, 1.0])  # an ACK: -0.2 / 0.8; a NACK: +1
    for _ in range(30):
        offset = loop.feedback(offset, torch.zeros(3, dtype=torch.bool), sent)
    assert offset.tolist() == pytest.approx([20.0, 0.0, 20.0])  # clamped; the client that sent nothing kept 0


def test_refusals() -> None:
    with pytest.raises(ValueError, match="link must be shannon or nr"):
        uplink(link="lte")
    with pytest.raises(ValueError, match="bler_target"):
        uplink(bler_target=1.0)
    with pytest.raises(ValueError, match="harq_retx"):
        uplink(harq_retx=-1)
    with pytest.raises(ValueError, match="cannot share 51 resource blocks"):
        uplink(60).send(torch.ones(60), torch.arange(60), torch.ones(60), torch.ones(60), None)


def _top_k_round(link: OFDMAUplink, gain: torch.Tensor, known: torch.Tensor) -> tuple:
    from channels import FadingChannel
    from channels.state import ChannelState

    torch.manual_seed(0)
    params = [torch.zeros(3000), torch.zeros(40)]
    method = TopKCompressor(fraction=0.1)
    server = method.make_server(params)
    clients = [method.make_client(params, k) for k in range(len(gain))]
    grads = [[torch.randn(3000), torch.randn(40)] for _ in clients]
    blocks = [c.encode(g) for c, g in zip(clients, grads)]
    state = ChannelState(
        gain.sqrt().to(torch.complex128).reshape(-1, 1, 1),
        known.sqrt().to(torch.complex128).reshape(-1, 1, 1),
        1,
    )
    channel = FadingChannel(generator=torch.Generator().manual_seed(1))
    result = transmit_blocks(
        channel, server, clients, blocks, PassOptions(snr_db=0.0, uplink=link), state=state
    )
    return clients, grads, blocks, result


def test_a_top_k_block_lost_after_its_retransmissions_stays_in_error_feedback() -> None:
    link = uplink(3, harq_retx=1, resource_blocks=9)  # 3 resource blocks each: many blocks a message
    # the scheduler believes 40 dB (MCS 27); the true SINR is where MCS 27's TBLER is about 0.6, so
    # that a block is lost after its retransmission with probability about 0.36
    tables = link.tables(3 * 12 * 13)
    low, _, step = tables.abstraction.snr_db_interp_min_max_delta
    true_db = low + step * int((tables.tbler[27] - 0.6).abs().argmin())
    gain = torch.full((3,), 10 ** (true_db / 10), dtype=torch.float64)
    known = torch.full((3,), 1e4, dtype=torch.float64)
    clients, grads, blocks, result = _top_k_round(link, gain, known)
    outcome = result.passes[0].link
    assert outcome is not None and any(outcome.lost)
    assert bool((outcome.lost_blocks < outcome.blocks).all())  # lost in part: the rest arrived
    arrived = []
    for k, client in enumerate(clients):
        # memory + what arrived = the gradient (the memory started at zero): nothing is lost
        for i, g in enumerate(grads[k]):
            assert torch.allclose(
                client.memory[i] + (blocks[k][i] - _lost(client, blocks[k], outcome, k)[i]), g
            )
        arrived.append([b - lost for b, lost in zip(blocks[k], _lost(client, blocks[k], outcome, k))])
        lost_entries = sum(int((p != 0).sum()) for p in _lost(client, blocks[k], outcome, k))
        assert (lost_entries > 0) == bool(outcome.lost[k])
    heard = [k for k in range(3) if int(outcome.lost_blocks[k]) < int(outcome.blocks[k])]
    mean = [sum(arrived[k][i] for k in heard) / max(len(heard), 1) for i in range(2)]
    for got, want in zip(result.gradient, mean):
        assert torch.allclose(got.flatten(), want)


def _lost(client, message, outcome, k):  # type: ignore[no-untyped-def]
    return client.lost_part(message, outcome.lost[k])


def test_top_k_lost_part_follows_the_bit_layout() -> None:
    method = TopKCompressor(fraction=0.5, error_feedback=False)
    client = method.make_client([torch.zeros(8)], 0)
    message = client.encode([torch.tensor([5.0, 0.1, -4.0, 0.2, 3.0, -0.3, 2.0, 0.0])])
    # kept entries 0, 2, 4, 6 in index order, 32 + 3 bits each: bits 35..69 are entry 2's
    assert client.message_bits() == 4 * 35
    assert client.lost_part(message, [(40, 41)])[0].tolist() == [0, 0, -4.0, 0, 0, 0, 0, 0]
    assert client.lost_part(message, [(34, 36)])[0].tolist() == [5.0, 0, -4.0, 0, 0, 0, 0, 0]
    assert client.lost_part(message, [(105, 140)])[0].tolist() == [0, 0, 0, 0, 0, 0, 2.0, 0]
    assert client.lost_part(message, [])[0].tolist() == [0.0] * 8


def test_top_k_lost_part_across_tensors() -> None:
    """A lost range from the end of one tensor into the next loses the items it covers in both (top-k
    has no header: the next tensor's other items arrive)."""
    method = TopKCompressor(fraction=0.5, error_feedback=False)
    client = method.make_client([torch.zeros(8), torch.zeros(8)], 0)
    v = torch.tensor([5.0, 0.1, -4.0, 0.2, 3.0, -0.3, 2.0, 0.0])
    message = client.encode([v, v])
    # tensor 0: items at bits 0..140 (35 each); tensor 1 from 140: its entry 0 at 140..175
    part = client.lost_part(message, [(130, 150)])
    assert part[0].tolist() == [0, 0, 0, 0, 0, 0, 2.0, 0] and part[1].tolist() == [5.0, 0, 0, 0, 0, 0, 0, 0]


def test_qsparse_lost_header_loses_its_tensor() -> None:
    from laser.digital import QSparseCompressor

    method = QSparseCompressor(fraction=0.5, quantizer="sign", error_feedback=False)
    client = method.make_client([torch.zeros(8), torch.zeros(8)], 0)
    v = torch.tensor([5.0, 0.1, -4.0, 0.2, 3.0, -0.3, 2.0, 0.0])
    message = client.encode([v, v])
    # per tensor a 32-bit scale, then 4 items of 3 + 1 bits: tensor 1 starts at bit 48
    assert client.message_bits() == 2 * (32 + 4 * 4)
    lost_header = client.lost_part(message, [(50, 51)])
    assert lost_header[0].abs().sum() == 0 and torch.equal(lost_header[1], message[1])
    lost_item = client.lost_part(message, [(32, 36)])  # tensor 0's first item: entry 0
    assert (lost_item[0] != 0).nonzero().flatten().tolist() == [0] and lost_item[1].abs().sum() == 0
    with pytest.raises(ValueError, match="layout"):
        client.lost_part(message[:1], [(0, 1)])


def test_a_quantiser_loses_its_whole_message() -> None:
    client = QSGDCompressor(levels=4).make_client([torch.zeros(5)], 0)
    message = client.encode([torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])])
    assert not client.partial_delivery
    assert torch.equal(client.lost_part(message, [(0, 1)])[0], message[0])
