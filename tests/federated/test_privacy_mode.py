"""Privacy mode (``privacy.clip``): clipped passes whose noise multiplier each round records, the
run's client-level epsilon from the accountant, and the settings it refuses (docs/physics.md, 14)."""

import math

import dp_accounting
import pytest
import torch

from federated import load_config
from federated.config import ConfigError
from federated.simulation import Simulation

SMALL = ["data.name=digits", "model.name=linear", "clients.num_clients=4", "rounds=3", "eval_every=3"]


def _sim(*overrides: str) -> Simulation:
    return Simulation(load_config(None, [*SMALL, *overrides]))


@pytest.mark.parametrize("method", ["laser", "powersgd", "zsgd"])
def test_over_awgn_each_round_is_a_gaussian_at_one_over_the_root_of_its_energy(method):
    # unit gains and noise_var 1: every pass has nu_p = 1 / sqrt(E_p), and the passes of a round (PowerSGD's
    # two, sharing the energy) compose into 1 / sqrt(E) whatever the clip
    sim = _sim(f"compressor.name={method}", "power.energy=25", "privacy.clip=0.5", "privacy.accountant=pld")
    records = [sim.round(t) for t in range(3)]
    for record in records:
        assert record["privacy_noise_multiplier"] == pytest.approx(0.2, rel=1e-6)
    # the run's epsilon: three Gaussians at 0.2, one at 0.2 / sqrt(3), the analytic Gaussian mechanism
    exact = dp_accounting.get_epsilon_gaussian(0.2 / math.sqrt(3), 1e-5)
    assert records[-1]["privacy_epsilon"] == pytest.approx(exact, rel=1e-6)
    assert records[0]["privacy_epsilon"] < records[1]["privacy_epsilon"] < records[2]["privacy_epsilon"]
    # every client's energy stays within its budget: its own signal at the public scale
    assert all(0 < r["energy_max"] <= 25 * (1 + 1e-5) for r in records)


def test_fading_makes_the_weakest_heard_client_set_the_round_noise_multiplier():
    sim = _sim(
        "channel.name=rayleigh",
        "channel.power_control=truncated",
        "channel.threshold=0.2",
        "power.energy=100",
        "privacy.clip=1.0",
    )
    record = sim.round(0)
    # nu = sqrt(noise_var / E) / min_{heard} |h_k| <= sqrt(1 / (E threshold)): truncation caps it
    assert 0 < record["privacy_noise_multiplier"] <= math.sqrt(1 / (100 * 0.2)) * (1 + 1e-6)


def test_the_summary_carries_the_runs_epsilon(tmp_path):
    from federated.train import train

    config = load_config(None, [*SMALL, "power.energy=4", "privacy.clip=1.0"])
    history = train(config, tmp_path / "run", progress=False)
    assert history.summary["privacy_epsilon"] == history.rounds[-1]["privacy_epsilon"] > 0


@pytest.mark.parametrize("method", ["laser", "powersgd"])
def test_a_target_epsilon_lowers_the_energy_until_the_channels_noise_meets_it(method):
    # at energy 100 a round over AWGN is a Gaussian at 0.1 (epsilon in the hundreds after 3 rounds); a
    # target of 5 over the 3 rounds needs nu = sigma(5, 1e-5) sqrt(3) per round: the clients lower their
    # energy by (0.1 / nu)^2, and the run ends at the target
    sim = _sim(
        f"compressor.name={method}",
        "power.energy=100",
        "privacy.clip=1.0",
        "privacy.accountant=pld",
        "privacy.target_epsilon=5",
    )
    nu = dp_accounting.get_sigma_gaussian(5.0, 1e-5) * math.sqrt(3)
    records = [sim.round(t) for t in range(3)]
    for record in records:
        assert record["privacy_noise_multiplier"] == pytest.approx(nu, rel=1e-6)
        assert record["energy_max"] <= 100 * (0.1 / nu) ** 2 * (1 + 1e-5)  # the clip's reserve, lowered
    assert records[-1]["privacy_epsilon"] == pytest.approx(5.0, rel=1e-6)
    # LASER's round 0 (one pass) is the same data and model either way: every client spends
    # (0.1 / nu)^2 of what it would (PowerSGD's second pass encodes the first's noisy decoding)
    if method == "laser":
        free = _sim(f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0").round(0)
        assert records[0]["energy_mean"] == pytest.approx(free["energy_mean"] * (0.1 / nu) ** 2, rel=1e-5)
    # a target the channel's noise already meets changes nothing: the same round as without one
    loose = _sim(
        f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0", "privacy.target_epsilon=1e5"
    )
    free = _sim(f"compressor.name={method}", "power.energy=100", "privacy.clip=1.0")
    a, b = loose.round(0), free.round(0)
    assert (a["energy_max"], a["privacy_noise_multiplier"]) == (
        b["energy_max"],
        b["privacy_noise_multiplier"],
    )


def test_the_rdp_calibration_meets_its_target():
    from channels import PrivacyAccountant

    accountant = PrivacyAccountant(1e-5, "rdp")
    nu = accountant.noise_multiplier_for(2.0, 50)
    for _ in range(50):
        accountant.step(nu)
    assert accountant.epsilon() == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["privacy.clip=0"], "privacy.clip"),
        (["privacy.clip=-1"], "privacy.clip"),
        (["privacy.delta=0"], "privacy.delta"),
        (["privacy.delta=1"], "privacy.delta"),
        (["privacy.accountant=gdp"], "privacy.accountant"),
        (["privacy.clip=1", "compressor.name=topk", "power.energy=1e6"], "compressor.name"),
        (["privacy.clip=1", "channel.name=noiseless"], "channel.name"),
        (["privacy.clip=1", "clients.weighting=data_size"], "clients.weighting"),
        (["privacy.target_epsilon=1"], "privacy.target_epsilon"),  # without a clip
        (["privacy.clip=1", "power.energy=.inf"], "power.energy"),  # the sum without noise
        (["privacy.clip=1", "channel.noise_var=0"], "channel.noise_var"),
        (
            [
                "privacy.clip=1",
                "channel.scenario=umi",
                "power.energy=null",
                "power.max_dbm=10",
                "channel.bs_pattern=sector",
                "channel.num_rings=1",
                "channel.inter_cell=full",
            ],
            "channel.inter_cell",  # other cells' signals are no trusted noise
        ),
        (["privacy.clip=1", "privacy.target_epsilon=0"], "privacy.target_epsilon"),
    ],
)
def test_what_privacy_mode_cannot_do_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert str(error.value).startswith(key) or error.value.key == key, str(error.value)


def _spy_uplink(sim: Simulation) -> list[dict]:
    """Every hidden round's participants, their blocks (before the clip) and the decoded gradient."""
    seen: list[dict] = []
    original = sim._hidden_uplink

    def spy(participants, updates, state, t):
        result = original(participants, updates, state, t)
        seen.append({"participants": participants, "blocks": updates.blocks, "gradient": result.gradient})
        return result

    sim._hidden_uplink = spy  # type: ignore[method-assign]
    return seen


def test_poisson_sampling_hides_who_takes_part_and_the_accountant_amplifies():
    # q = 1 / 4, each client on its own; the server divides the participants' clipped sum by the expected
    # count q K (almost no noise at this energy), whoever and however many took part (seed 1 draws
    # 2, 0, 1, 1, 2, 0, 1, 1 participants)
    from channels import PrivacyAccountant, block_clips, clip_blocks

    sim = _sim(
        "compressor.name=zsgd",
        "privacy.clip=1.0",
        "clients.sampling=poisson",
        "clients.per_round=1",
        "power.energy=1e10",
        "rounds=8",
        "eval_every=8",
        "seed=1",
    )
    seen = _spy_uplink(sim)
    records = [sim.round(t) for t in range(8)]
    counts = {len(s["participants"]) for s in seen}
    assert len(counts) > 1 and 0 in counts  # the count varies, and a round may take nobody
    for record, round_ in zip(records, seen):
        assert record["participants"] == round_["participants"]
        assert record["privacy_sampling_probability"] == 0.25
        # the same pass whoever took part: its channel uses, noise and noise multiplier (Z-SGD, AWGN)
        assert record["channel_uses"] == records[0]["channel_uses"] > 0
        assert record["noise_var"] == records[0]["noise_var"]
        assert record["privacy_noise_multiplier"] == records[0]["privacy_noise_multiplier"]
        if round_["blocks"]:
            clips = block_clips([int(b.numel()) for b in round_["blocks"][0]], 1.0)
            clipped = clip_blocks(round_["blocks"], clips)
            for b, got in enumerate(round_["gradient"]):
                expected = sum(row[b] for row in clipped) / (0.25 * 4)
                assert torch.allclose(got.flatten(), expected.flatten(), atol=1e-4)
        else:  # nobody: the noise alone, spending nothing; no training loss
            assert math.isnan(record["train_loss"]) and record["energy_max"] == 0
            assert all(float(g.abs().max()) < 1e-3 for g in round_["gradient"])
    # the accountant: Poisson-subsampled Gaussians at the rounds' noise multipliers, tighter than q = 1
    sampled = PrivacyAccountant(1e-5, "rdp", "poisson", probability=0.25)
    visible = PrivacyAccountant(1e-5, "rdp")
    for record in records:
        sampled.step(record["privacy_noise_multiplier"])
        visible.step(record["privacy_noise_multiplier"])
    assert records[-1]["privacy_epsilon"] == pytest.approx(sampled.epsilon(), rel=1e-9)
    assert sampled.epsilon() < visible.epsilon()


def test_a_hidden_pass_fixes_its_scale_from_every_clients_channel():
    # Rayleigh with truncation: the noise multiplier is the population's (every client that could be
    # heard), so it is the same whoever took part, as the pass over all of them gives
    hidden = _sim(
        "channel.name=rayleigh",
        "channel.power_control=truncated",
        "channel.threshold=0.1",
        "privacy.clip=1.0",
        "clients.sampling=poisson",
        "clients.per_round=1",
        "power.energy=100",
    )
    seen = _spy_uplink(hidden)
    record = hidden.round(0)
    everyone = _sim(
        "channel.name=rayleigh",
        "channel.power_control=truncated",
        "channel.threshold=0.1",
        "privacy.clip=1.0",
        "clients.per_round=1",
        "power.energy=100",
    )
    # the same channel draw for the population (drawn for every client first, either way)
    state = everyone.channel.realize(4, sum(everyone.compressor.server.block_sizes()), dtype=torch.complex64)
    quality = state.gains.abs().square().flatten()
    heard = quality[quality >= 0.1]
    nu = math.sqrt(1 / 100) / float(heard.min().sqrt())
    assert record["privacy_noise_multiplier"] == pytest.approx(nu, rel=1e-5)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["clients.sampling=poisson", "clients.per_round=2"], "clients.sampling"),  # without privacy mode
        (
            ["privacy.clip=1", "clients.sampling=poisson", "clients.per_round=2", "privacy.accountant=pld"],
            "privacy.accountant",
        ),
        (
            [
                "privacy.clip=1",
                "clients.sampling=poisson",
                "clients.per_round=2",
                "compressor.keep_unheard=true",
            ],
            "compressor.keep_unheard",
        ),
    ],
)
def test_what_poisson_sampling_cannot_do_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert error.value.key == key, str(error.value)


@pytest.mark.parametrize("warmup", [[], ["compressor.warmup_rounds=1"]])
def test_poisson_sampling_refuses_a_method_of_two_passes(warmup):
    # a warm-up sends one pass, then PowerSGD's two: refused before the run, not when the warm-up ends
    with pytest.raises(ConfigError) as error:
        _sim(
            "privacy.clip=1",
            "clients.sampling=poisson",
            "clients.per_round=2",
            "compressor.name=powersgd",
            *warmup,
        )
    assert error.value.key == "clients.sampling"


def test_poisson_sampling_refuses_clients_split_over_processes():
    from federated.distributed import check_shardable

    config = load_config(None, [*SMALL, "privacy.clip=1", "clients.sampling=poisson"])
    with pytest.raises(ConfigError) as error:
        check_shardable(config, 2)
    assert error.value.key == "clients.sampling"


def test_a_round_nobody_takes_part_in_keeps_the_physical_units_and_the_summary(tmp_path):
    # UMi in dBm, one client a round expected of four: seed 1 draws an empty round 1, which spends no
    # joules and has no received SNR; the summary's training loss is the other rounds'
    from federated.train import train

    config = load_config(
        None,
        [
            *SMALL,
            "channel.name=rayleigh",
            "channel.scenario=umi",
            "power.energy=null",
            "power.max_dbm=23",
            "privacy.clip=1",
            "clients.sampling=poisson",
            "clients.per_round=1",
            "seed=1",
        ],
    )
    history = train(config, tmp_path / "run", progress=False)
    empty = [r for r in history.rounds if not r["participants"]]
    assert empty and all(r["energy_j_max"] == 0 and "rx_snr_db" not in r for r in empty)
    assert all(r["air_time_s"] > 0 for r in history.rounds)  # the pass went over the air all the same
    assert math.isfinite(history.summary["train_loss"]) and math.isfinite(history.summary["rx_snr_db_mean"])


@pytest.mark.parametrize("sampling", ["uniform", "poisson"])
def test_laser_clients_keep_what_the_clip_cut_off_in_their_error_feedback(sampling):
    # the same round with privacy.keep_clipped on and off: the same transmission (the decoded gradient),
    # and each participant's memory differs by exactly the part of its factor the clip cut off,
    # Q (P - P_clipped)^T, of norm ||P - P_clipped|| (the query is orthonormal); the others keep theirs
    from channels import block_clips, clipped_off

    common = [
        "compressor.name=laser",
        "privacy.clip=0.05",
        f"clients.sampling={sampling}",
        "clients.per_round=2",
    ]
    runs = [
        _sim(*common, "power.energy=100", "seed=1", f"privacy.keep_clipped={keep}") for keep in (True, False)
    ]
    seen: list[list[dict]] = []
    for sim in runs:
        calls: list[dict] = []
        original = sim._uplink

        def spy(participants, mine, updates, state, t, original=original, calls=calls):
            result = original(participants, mine, updates, state, t)
            calls.append(
                {"participants": participants, "blocks": updates.blocks, "gradient": result[0].gradient}
            )
            return result

        sim._uplink = spy  # type: ignore[method-assign]
        seen.append(calls)
    records = [sim.round(0) for sim in runs]
    (kept, lost), (round_kept, round_lost) = runs, (seen[0][0], seen[1][0])
    assert records[0]["participants"] == records[1]["participants"] == round_kept["participants"]
    for g_kept, g_lost in zip(round_kept["gradient"], round_lost["gradient"]):
        assert g_kept.equal(g_lost)  # the same transmission either way
    cut = 0
    for k in range(4):
        memory_kept = [m for m in kept.compressor.clients[k].memory if m is not None]
        memory_lost = [m for m in lost.compressor.clients[k].memory if m is not None]
        if k not in round_kept["participants"]:
            assert not memory_kept and not memory_lost  # never sent: no memory either way
            continue
        blocks = round_kept["blocks"][round_kept["participants"].index(k)]
        off = clipped_off(blocks, block_clips([int(t.numel()) for t in blocks], 0.05))
        difference = float((memory_kept[0] - memory_lost[0]).norm())
        assert difference == pytest.approx(float(off[0].norm()), rel=1e-4)  # the weight's factor
        cut += difference > 0
    assert cut > 0  # the clip cut something off


@pytest.mark.parametrize("method", ["zsgd", "laser"])
def test_central_mode_adds_the_targets_noise_over_the_exact_mean(method):
    # Flower-style central DP: the target's noise multiplier nu every round, noise nu C / K per entry of
    # the mean (4 clients, clip 0.5), and the run's epsilon at its last round the target
    from channels import PrivacyAccountant

    common = ["channel.name=noiseless", "privacy.clip=0.5", "privacy.target_epsilon=5"]
    common += ["privacy.mechanism=central"]
    sim = _sim(f"compressor.name={method}", *common)
    nu = PrivacyAccountant(1e-5).noise_multiplier_for(5.0, 3)
    records = [sim.round(t) for t in range(3)]
    for record in records:
        assert record["privacy_noise_multiplier"] == pytest.approx(nu, rel=1e-9)
        assert record["noise_var"] == pytest.approx([(nu * 0.5 / 4) ** 2] * 2, rel=1e-9)  # per block
    assert records[-1]["privacy_epsilon"] == pytest.approx(5.0, rel=1e-3)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["privacy.clip=1", "privacy.mechanism=central"], "privacy.mechanism"),  # no target
        (["privacy.clip=1", "privacy.target_epsilon=5", "privacy.mechanism=central"], "channel.name"),
        (
            [
                "channel.name=noiseless",
                "privacy.clip=1",
                "privacy.target_epsilon=5",
                "privacy.mechanism=central",
                "clients.sampling=poisson",
                "clients.per_round=2",
            ],
            "clients.sampling",
        ),
        (["privacy.mechanism=ldp"], "privacy.mechanism"),
    ],
)
def test_what_central_mode_cannot_do_is_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert error.value.key == key, str(error.value)


def test_a_target_below_the_snr_floor_says_so_and_artificial_noise_keeps_the_signal_higher():
    # AWGN, energy 100, epsilon 10 over 3 rounds: the target's energy leaves the signals far below a
    # floor of -20 dB per use; the run warns once, and with artificial noise the signals keep more of
    # their energy, the clients spend the rest on noise, and the server's estimate is as noisy as before
    target = ["power.energy=100", "privacy.clip=1.0", "privacy.target_epsilon=10", "privacy.snr_floor_db=-20"]
    lowered = _sim("compressor.name=zsgd", *target)
    with pytest.warns(UserWarning, match="below privacy.snr_floor_db = -20") as caught:
        plain = [lowered.round(t) for t in range(3)]
    assert len([w for w in caught if "snr_floor_db" in str(w.message)]) == 1  # once a run
    record = plain[0]
    uses = record["channel_uses"]
    budget_db = 10 * math.log10(100 / uses)
    # alpha = (nu at full energy / the target's nu)^2, nu = 1 / sqrt(E) over AWGN
    alpha = (0.1 / record["privacy_noise_multiplier"]) ** 2
    assert record["privacy_energy_scale"] == pytest.approx(alpha, rel=1e-6)
    assert record["privacy_snr_db"] == pytest.approx(budget_db + 10 * math.log10(alpha), rel=1e-6)
    assert "privacy_artificial_noise_var" not in record
    sending = _sim("compressor.name=zsgd", *target, "privacy.artificial_noise=true")
    with pytest.warns(UserWarning, match="cannot carry"):  # 100 units cannot pay for noise up to -20 dB
        sent = [sending.round(t) for t in range(3)]
    for a, b in zip(plain, sent):
        assert b["noise_var"] == pytest.approx(a["noise_var"], rel=1e-6)  # the same noise (float32 sums)
        assert b["privacy_noise_multiplier"] == a["privacy_noise_multiplier"]
        assert a["privacy_energy_scale"] < b["privacy_energy_scale"]  # the signals keep more
        assert b["privacy_artificial_noise_var"] > 0
        assert (
            a["energy_max"] < b["energy_max"] <= 100 * (1 + 1e-6)
        )  # the noise's energy counted, within budget


def test_artificial_noise_under_a_reachable_floor_keeps_the_signals_at_it():
    # the target alone leaves -27.4 dB per use; the budgets carry noise up to -25.3 dB: a floor of -26 dB
    # is kept exactly, and the clients spend less than their whole budget
    common = ["compressor.name=zsgd", "power.energy=100", "privacy.clip=1.0", "privacy.target_epsilon=10"]
    sim = _sim(*common, "privacy.snr_floor_db=-26", "privacy.artificial_noise=true")
    record = sim.round(0)
    assert record["privacy_snr_db"] == pytest.approx(-26, abs=1e-9)
    assert record["privacy_artificial_noise_var"] > 0 and record["energy_max"] < 100


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["privacy.clip=1", "privacy.snr_floor_db=-20"], "privacy.snr_floor_db"),  # no target
        (
            ["privacy.clip=1", "privacy.target_epsilon=5", "privacy.artificial_noise=true"],
            "privacy.artificial_noise",
        ),
        (
            [
                "privacy.clip=1",
                "privacy.target_epsilon=5",
                "privacy.snr_floor_db=-20",
                "privacy.artificial_noise=true",
                "channel.name=rayleigh",
                "channel.rx_antennas=2",
            ],
            "channel.rx_antennas",
        ),
        (
            [
                "privacy.clip=1",
                "privacy.target_epsilon=5",
                "privacy.snr_floor_db=-20",
                "privacy.artificial_noise=true",
                "channel.name=rayleigh",
                "channel.power_control=imperfect_csi",
                "channel.csi_error_var=0.1",
            ],
            "channel.csi_error_var",
        ),
        (
            [
                "privacy.clip=1",
                "privacy.target_epsilon=5",
                "privacy.snr_floor_db=-20",
                "privacy.artificial_noise=true",
                "clients.sampling=poisson",
                "clients.per_round=2",
            ],
            "clients.sampling",
        ),
    ],
)
def test_what_the_snr_floor_cannot_do_is_refused_naming_the_key(overrides, key):
    _refused(overrides, key)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["privacy.keep_clipped=true"], "privacy.keep_clipped"),  # no clip
        (["privacy.clip=1", "privacy.keep_clipped=true", "compressor.name=adsgd"], "privacy.keep_clipped"),
        (["privacy.clip=1", "privacy.statistic_clip=0.1"], "privacy.statistic_clip"),  # no statistic pass
    ],
)
def test_what_keep_clipped_and_the_statistic_clip_cannot_do_is_refused(overrides, key):
    _refused(overrides, key)


def _refused(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, [*SMALL, *overrides])
    assert error.value.key == key, str(error.value)


def test_artificial_noise_refuses_clients_split_over_processes():
    from federated.distributed import check_shardable

    config = load_config(
        None,
        [
            *SMALL,
            "privacy.clip=1",
            "privacy.target_epsilon=5",
            "privacy.snr_floor_db=-20",
            "privacy.artificial_noise=true",
        ],
    )
    with pytest.raises(ConfigError) as error:
        check_shardable(config, 2)
    assert error.value.key == "privacy.artificial_noise"


@pytest.mark.parametrize(
    "precond", [["precond.name=oasis"], ["precond.name=adam", "precond.statistic=mean_of_squares"]]
)
def test_a_preconditioners_statistic_pass_is_its_own_release_composed_in_the_round(precond):
    # AWGN, unit gains: the update's pass at (1 - f) E and the statistic's at f E are Gaussians at
    # 1 / sqrt((1 - f) E) and 1 / sqrt(f E) whatever their clips; the round composes them to 1 / sqrt(E)
    local = ["clients.lr=0.001", "clients.local_steps=2", "clients.optimizer=sgd"]  # a scaled local SGD
    common = ["compressor.name=zsgd", "power.energy=100", "privacy.clip=1.0", *local, *precond]
    sim = _sim(*common, "privacy.statistic_clip=0.01", "clients.vectorize=loop")
    record = sim.round(0)
    assert record["privacy_noise_multiplier"] == pytest.approx(0.1, rel=1e-6)
    assert record["precond_channel_uses"] > 0
    # a target: each of the round's two passes keeps to sqrt(2) nu*, so the run ends at the target
    target = _sim(*common, "privacy.target_epsilon=5", "clients.vectorize=loop")
    records = [target.round(t) for t in range(3)]
    assert records[-1]["privacy_epsilon"] == pytest.approx(5.0, rel=1e-3)


def test_poisson_sampling_refuses_a_preconditioners_statistic_pass():
    with pytest.raises(ConfigError) as error:
        load_config(
            None,
            [
                *SMALL,
                "privacy.clip=1",
                "clients.sampling=poisson",
                "clients.per_round=2",
                "precond.name=oasis",
            ],
        )
    assert error.value.key == "precond.name"


def test_the_statistic_pass_is_clipped_at_its_own_clip():
    # almost no noise (energy 1e8): the decoded statistic is the mean of clipped statistics, of norm at
    # most privacy.statistic_clip (each block within C_b, sum_b C_b^2 = C^2); without the clip it is larger
    local = ["clients.lr=0.001", "clients.local_steps=2", "clients.optimizer=sgd", "clients.vectorize=loop"]
    common = ["compressor.name=zsgd", "power.energy=1e8", "precond.name=oasis", *local]

    def decoded_norm(*overrides):
        sim = _sim(*common, *overrides)
        seen = []
        send = sim.extra_pass.send

        def spy(*args, **kwargs):
            out = send(*args, **kwargs)
            seen.append(math.sqrt(sum(float(g.double().square().sum()) for g in out.gradient)))
            return out

        sim.extra_pass.send = spy  # type: ignore[method-assign]
        sim.round(0)
        return seen[0]

    free = decoded_norm()
    clipped = decoded_norm("privacy.clip=1.0", f"privacy.statistic_clip={free / 10}")
    assert clipped <= free / 10 * (1 + 1e-3)


def test_the_floor_counts_the_statistic_passs_channel_uses_too():
    # with OASIS's statistic pass the round has twice the uses; a floor the budgets can carry (-31 dB
    # per use of the round) is kept exactly, as the record counts it
    local = ["clients.lr=0.001", "clients.local_steps=2", "clients.optimizer=sgd", "clients.vectorize=loop"]
    common = ["compressor.name=zsgd", "power.energy=100", "privacy.clip=1.0", "privacy.target_epsilon=10"]
    sim = _sim(
        *common, *local, "precond.name=oasis", "privacy.snr_floor_db=-31", "privacy.artificial_noise=true"
    )
    record = sim.round(0)
    assert record["privacy_snr_db"] == pytest.approx(-31, abs=1e-9)
    assert record["privacy_artificial_noise_var"] > 0
