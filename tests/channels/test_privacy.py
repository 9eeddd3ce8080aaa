"""Privacy from the channel's noise (``channels.privacy``): a clipped pass's noise multiplier, and its
client-level accounting over rounds with dp-accounting against the analytic Gaussian mechanism."""

import math

import dp_accounting
import pytest
import torch
from _collective import transmit_split

from channels import ChannelState, FadingChannel, SignalBlocks
from channels.privacy import (
    PrivacyAccountant,
    block_clips,
    clip_blocks,
    noise_multiplier,
    round_noise_multiplier,
)

DELTA = 1e-5


def test_one_round_of_pld_is_the_analytic_gaussian_mechanism_and_rdp_is_at_least_it():
    for nu in (0.5, 1.0, 4.0):
        exact = dp_accounting.get_epsilon_gaussian(nu, DELTA)  # Balle and Wang 2018
        pld = PrivacyAccountant(DELTA, "pld").step(nu)
        rdp = PrivacyAccountant(DELTA, "rdp").step(nu)
        assert pld == pytest.approx(exact, rel=1e-4)
        assert rdp >= exact
        # with sampling, the accountant's PLD grid (1e-4 by default) at q = 1 is the same mechanism
        grid = PrivacyAccountant(DELTA, "pld", "poisson", probability=1.0).step(nu)
        assert grid == pytest.approx(exact, rel=1e-3)


def test_rounds_at_a_constant_noise_multiplier_are_one_gaussian_at_nu_over_sqrt_t():
    for accountant in ("pld", "rdp"):
        many = PrivacyAccountant(DELTA, accountant)
        for _ in range(50):
            many.step(3.0)
        one = PrivacyAccountant(DELTA, accountant).step(3.0 / math.sqrt(50))
        assert many.epsilon() == pytest.approx(one, rel=1e-3), accountant
        assert many.rounds == 50
    # and rounds that differ compose as (sum nu^-2)^(-1/2), passes within a round likewise
    varying = PrivacyAccountant(DELTA, "pld")
    for nu in (1.0, 2.0, 4.0):
        varying.step(nu)
    combined = (1 + 1 / 4 + 1 / 16) ** -0.5
    assert varying.epsilon() == pytest.approx(dp_accounting.get_epsilon_gaussian(combined, DELTA), rel=1e-4)
    passes = PrivacyAccountant(DELTA, "rdp")
    assert passes.step([2.0, 2.0]) == pytest.approx(
        PrivacyAccountant(DELTA, "rdp").step(math.sqrt(2)), rel=1e-9
    )
    assert round_noise_multiplier([2.0, math.inf]) == 2.0  # a pass that sends nothing releases nothing


def test_sampling_amplifies_only_where_the_participants_are_hidden():
    full = PrivacyAccountant(DELTA, "rdp").step(1.0)
    everyone = PrivacyAccountant(DELTA, "rdp", "poisson", probability=1.0).step(1.0)
    assert everyone == pytest.approx(full, rel=1e-6)  # q = 1: no amplification
    for accountant in ("rdp", "pld"):
        a_tenth = PrivacyAccountant(DELTA, accountant, "poisson", probability=0.1)
        assert a_tenth.step(1.0) < 0.5 * full
    fixed = PrivacyAccountant(DELTA, "rdp", "fixed", population=100, per_round=10)
    # replace-one neighbours: sensitivity 2C, the event's multiplier nu / 2 (weaker than add/remove at nu),
    # amplified by the 10 of 100 against the same mechanism with everyone's participation visible
    # (at nu = 4: 2.17 unsampled, 0.60 with 10 of 100; add/remove at nu = 4 would give 1.01)
    replace_one = PrivacyAccountant(DELTA, "rdp").step(2.0)
    assert PrivacyAccountant(DELTA, "rdp").step(4.0) < replace_one
    assert 0 < fixed.step(4.0) < 0.5 * replace_one
    with pytest.raises(ValueError, match="accountant = 'pld'"):
        PrivacyAccountant(DELTA, "pld", "fixed", population=100, per_round=10)


def test_a_round_released_without_noise_leaves_no_privacy_from_then_on():
    accountant = PrivacyAccountant(DELTA, "pld")
    accountant.step(2.0)
    assert accountant.step(0.0) == math.inf and accountant.step(3.0) == math.inf
    again = PrivacyAccountant(DELTA, "pld")
    again.load_state_dict(accountant.state_dict())  # and so after a resume
    assert again.epsilon() == math.inf and again.rounds == 3


def test_a_round_that_sends_nothing_releases_nothing_and_the_state_recomposes():
    accountant = PrivacyAccountant(DELTA, "rdp", "poisson", probability=0.2)
    assert accountant.epsilon() == 0.0 and accountant.step(math.inf) == 0.0
    for nu in (1.5, 0.8):
        accountant.step(nu)
    again = PrivacyAccountant(DELTA, "rdp", "poisson", probability=0.2)
    again.load_state_dict(accountant.state_dict())
    assert again.epsilon() == accountant.epsilon() and again.rounds == 3


def test_the_noise_multiplier_of_a_clipped_pass():
    # one antenna, blocks clipped to C_b with the energy split E_b = E C_b^2 / C^2 and the scale
    # eta_b = sqrt(E_b) min_k |h_k| / C_b: the sensitivity is sqrt(E) min_k |h_k|, whatever C is
    energy, noise_var, weakest = 50.0, 2.0, 0.3
    for clips in ([1.0], [0.5, 2.0, 3.0]):
        c = torch.tensor(clips, dtype=torch.float64)
        split = energy * c.square() / c.square().sum()
        eta = split.sqrt() * weakest / c
        expected = math.sqrt(noise_var) / (math.sqrt(energy) * weakest)
        assert noise_multiplier(noise_var, eta, c) == pytest.approx(expected, rel=1e-12)
    # N antennas: the server may combine toward client k, ||h_k|| / |m^H h_k| >= 1 raises its sensitivity
    ratio = torch.tensor([[1.0, 1.2], [2.0, 1.0]], dtype=torch.float64)
    eta, c = torch.tensor([1.0, 0.5]), torch.tensor([1.0, 2.0])
    worst = max(1.0 + 1.2**2, 4.0 + 1.0)
    assert noise_multiplier(1.0, eta, c, ratio) == pytest.approx(1 / math.sqrt(worst), rel=1e-12)
    assert noise_multiplier(1.0, [0.0], [1.0]) == math.inf


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: PrivacyAccountant(0.0), "delta"),
        (lambda: PrivacyAccountant(1.0), "delta"),
        (lambda: PrivacyAccountant(DELTA, "gdp"), "accountant"),
        (lambda: PrivacyAccountant(DELTA, sampling="uniform"), "sampling"),
        (lambda: PrivacyAccountant(DELTA, "rdp", "poisson", probability=0.0), "probability"),
        (lambda: PrivacyAccountant(DELTA, "rdp", "fixed", population=10, per_round=11), "per_round"),
        (lambda: PrivacyAccountant(DELTA).step(-1.0), "noise_multiplier"),
        (lambda: PrivacyAccountant(DELTA).step(math.nan), "noise_multiplier"),
        (lambda: noise_multiplier(0.0, [1.0], [1.0]), "noise_var"),
        (lambda: noise_multiplier(1.0, [1.0], [0.0]), "clips"),
        (lambda: noise_multiplier(1.0, [1.0, 2.0], [1.0]), "scales"),
        (lambda: noise_multiplier(1.0, [1.0], [1.0], torch.tensor([[-0.5]])), "gain_ratio"),
    ],
)
def test_refusals_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def _state(gains, norms=None):
    g = torch.as_tensor(gains, dtype=torch.complex128).reshape(-1, 1, 1)
    v = None if norms is None else torch.as_tensor(norms, dtype=torch.float64).reshape(-1, 1, 1)
    return ChannelState(g, g, 1, v)


def test_a_clipped_pass_sets_its_scale_from_the_clips_budgets_and_channel_alone():
    # client blocks within their clips; the scale is min_k sqrt(E_b) |h_k| / C_b whatever the data,
    # every client spends at most its budget, and the noise multiplier is sqrt(noise_var / E) / min |h|
    clips = block_clips([4, 2], 3.0)
    energy = 20.0
    split = energy * clips.square() / clips.square().sum()
    state = _state([0.8, 1.5, 0.5j])
    channel = FadingChannel(noise_var=2.0, generator=torch.Generator().manual_seed(0))
    outs = []
    for seed in (1, 2):  # two different data sets, the same channel
        g = torch.Generator().manual_seed(seed)
        raw = [[torch.randn(4, generator=g) * 5, torch.randn(2, generator=g)] for _ in range(3)]
        sent = clip_blocks(raw, clips)
        for row in sent:
            for u, c in zip(row, clips.tolist()):
                assert float(torch.linalg.vector_norm(u)) <= c * (1 + 1e-6)  # never above its clip
        out = channel.transmit(SignalBlocks(sent), split.expand(3, 2).clone(), state=state, clips=clips)
        assert bool((out.energy_used <= split[None, :].float() * (1 + 1e-5)).all())
        outs.append(out)
    expected_scale = split.sqrt() * 0.5 / clips
    assert torch.allclose(outs[0].scale.double(), expected_scale, rtol=1e-6)
    assert torch.equal(outs[0].scale, outs[1].scale)  # nothing of the data in what the server is told
    nu = math.sqrt(2.0 / energy) / 0.5
    assert outs[0].noise_multiplier == pytest.approx(nu, rel=1e-6)
    # N antennas: the server could combine toward a client, ||h_k|| / |m^H h_k| counts
    wide = _state([0.8, 1.5, 0.5j], norms=[0.8, 3.0, 0.5])
    out = channel.transmit(SignalBlocks(sent), split.expand(3, 2).clone(), state=wide, clips=clips)
    worst = max(1.0, (3.0 / 1.5) ** 2, 1.0)
    assert out.noise_multiplier == pytest.approx(nu / math.sqrt(worst), rel=1e-6)
    # without clips: no noise multiplier, the data-dependent scale as before
    plain = channel.transmit(SignalBlocks(sent), split.expand(3, 2).clone(), state=state)
    assert plain.noise_multiplier is None


def test_a_clipped_pass_refuses_what_it_cannot_bound():
    channel = FadingChannel(noise_var=1.0)
    blocks = SignalBlocks([[torch.tensor([3.0, 4.0])], [torch.tensor([0.1, 0.0])]])
    energy = torch.ones(2, 1)
    with pytest.raises(ValueError, match="exceed their clips"):
        channel.transmit(blocks, energy, clips=[1.0])
    with pytest.raises(ValueError, match="weights must be None"):
        channel.transmit(blocks, energy, clips=[5.0], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="clips must be 1"):
        channel.transmit(blocks, energy, clips=[5.0, 5.0])
    with pytest.raises(ValueError, match="clip"):
        block_clips([3], 0.0)
    with pytest.raises(ValueError, match="min_noise_multiplier"):
        channel.transmit(blocks, energy, min_noise_multiplier=1.0)  # needs clips


def test_the_sensitivity_counts_what_each_sender_really_adds():
    from channels.power_control import TruncatedInversion

    clips = block_clips([2], 1.0)
    sent = clip_blocks([[torch.tensor([3.0, 4.0])], [torch.tensor([0.0, 0.2])]], clips)
    energy = torch.full((2, 1), 4.0)
    channel = FadingChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    # imperfect CSI: client 1 inverts an estimate of 1 where its gain is 2, so it arrives twice as
    # loud as the scale assumes: its sensitivity is twice the others'
    gains = torch.tensor([1.0, 2.0], dtype=torch.complex128).reshape(2, 1, 1)
    known = torch.ones(2, 1, 1, dtype=torch.complex128)
    out = channel.transmit(SignalBlocks(sent), energy, state=ChannelState(gains, known, 1), clips=clips)
    eta = float(out.scale[0])
    assert out.noise_multiplier == pytest.approx(1 / (eta * float(clips[0]) * 2.0), rel=1e-6)
    # a client truncation silences releases nothing, however large its channel vector
    truncating = FadingChannel(policy=TruncatedInversion(0.5), noise_var=1.0)
    weak = torch.tensor([1.0, 0.5], dtype=torch.complex128).reshape(2, 1, 1)  # |g|^2 = 0.25 < 0.5: silent
    state = ChannelState(weak, weak, 1, torch.tensor([1.0, 40.0], dtype=torch.float64).reshape(2, 1, 1))
    out = truncating.transmit(SignalBlocks(sent), energy, state=state, clips=clips)
    assert out.active[:, 0].tolist() == [True, False]
    assert out.noise_multiplier == pytest.approx(1 / (float(out.scale[0]) * float(clips[0])), rel=1e-6)
    # an infinite budget sends the sum without noise: no privacy
    free = channel.transmit(
        SignalBlocks(sent), torch.full((2, 1), math.inf), state=ChannelState(known, known, 1), clips=clips
    )
    assert free.noise_multiplier == 0.0
    # what each client spends is its own signal at the public scale (client 1's is a fifth of its clip)
    out = channel.transmit(SignalBlocks(sent), energy, state=ChannelState(known, known, 1), clips=clips)
    assert out.energy_used[:, 0].tolist() == pytest.approx([4.0, 4.0 / 25], rel=1e-5)


def test_a_clipped_pass_split_over_processes_gives_the_one_process_result():
    from channels import RayleighFading
    from channels.power_control import TruncatedInversion

    g = torch.Generator().manual_seed(4)
    clips = block_clips([3, 2], 2.0)
    sent = clip_blocks(
        [[torch.randn(3, generator=g) * 3, torch.randn(2, generator=g)] for _ in range(5)], clips
    )
    energy = torch.full((5, 2), 6.0, dtype=torch.float64)
    channel = FadingChannel(RayleighFading(), TruncatedInversion(0.3), noise_var=1.0)
    state = channel.realize(5, 10, torch.Generator().manual_seed(3), torch.complex128)
    options = {"clips": clips, "min_noise_multiplier": 3.0}
    whole = channel.transmit(
        SignalBlocks(sent), energy, state=state, generator=torch.Generator().manual_seed(7), **options
    )
    results = transmit_split(channel, sent, energy, state, [slice(0, 2), slice(2, 5)], 7, **options)
    assert whole.noise_multiplier == pytest.approx(3.0, rel=1e-9)  # lowered to the floor
    for out in results:
        assert out.noise_multiplier == pytest.approx(whole.noise_multiplier, rel=1e-12)
        assert torch.equal(out.scale, whole.scale)


def test_hidden_participation_fixes_the_pass_from_the_population_and_divides_by_the_expected_count():
    # four clients, some of them absent (zeros): the scale, the noise multiplier and the count the
    # server divides by are the population's whoever takes part; the estimate is the present clients'
    # sum over q K_j, where K_j counts the clients that could be heard (truncation: |h|^2 >= 0.2)
    from channels.power_control import TruncatedInversion

    clips = block_clips([3, 2], 2.0)
    energy = torch.full((4, 2), 50.0) * clips.square() / clips.square().sum()
    state = _state([1.0, 0.6, 2.0, 0.3])  # client 3 below the threshold: never heard
    channel = FadingChannel(noise_var=1e-8, policy=TruncatedInversion(0.2))
    g = torch.Generator().manual_seed(3)
    data = clip_blocks([[torch.randn(3, generator=g), torch.randn(2, generator=g)] for _ in range(4)], clips)
    outs = {}
    for present in [(0, 2), (1, 2), (0, 1, 2, 3)]:
        sent = [row if k in present else [torch.zeros(3), torch.zeros(2)] for k, row in enumerate(data)]
        out = channel.transmit(SignalBlocks(sent), energy, state=state, clips=clips, participation=0.5)
        heard = [k for k in present if k != 3]
        for b, size in enumerate((3, 2)):
            expected = sum((data[k][b] for k in heard), torch.zeros(size)) / (0.5 * 3)
            assert torch.allclose(out.estimates[b], expected, atol=1e-3)
        absent = [k for k in range(4) if k not in present]
        assert bool((out.energy_used[absent] == 0).all())  # an absent client sends nothing
        outs[present] = out
    first, *others = outs.values()
    for out in others:  # nothing the server is told depends on who took part
        assert torch.equal(out.scale, first.scale)
        assert torch.equal(out.noise_var, first.noise_var)
        assert out.noise_multiplier == first.noise_multiplier
    # the population's weakest heard client (|h| = 0.6) sets the scale, even in a round it is absent
    assert torch.allclose(outs[(0, 2)].scale.double(), energy[0].sqrt() * 0.6 / clips, rtol=1e-6)
    assert first.noise_multiplier == pytest.approx(math.sqrt(1e-8 / 50) / 0.6, rel=1e-6)
    with pytest.raises(ValueError, match="participation"):
        channel.transmit(SignalBlocks(data), energy, state=state, participation=0.5)  # needs clips
    with pytest.raises(ValueError, match="participation"):
        channel.transmit(SignalBlocks(data), energy, state=state, clips=clips, participation=1.5)
