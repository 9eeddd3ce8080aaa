"""The splits of the training data over the clients (``data.partition``): what each covers, the
Dirichlet shares' law over seeds, the redraw rule, sampling with replacement from a small shard,
the tasks' sizes and ``partition.json``, and the IID default's batches bit for bit as before."""

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from federated.config import ConfigError, load_config
from federated.data.datasets import ClientBatches, iid_split
from federated.data.partitions import (
    MAX_DRAWS,
    PartitionError,
    PartitionSpec,
    contiguous,
    dirichlet,
    iid,
    partition_table,
    quantity,
    shards,
    split,
)
from federated.data.tasks import ClassificationTask, LanguageTask, build_task
from federated.outputs import RunDirectory

K, C, PER_CLASS = 10, 10, 500
LABELS = torch.arange(C).repeat_interleave(PER_CLASS)  # 10 classes x 500 samples, sorted


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_disjoint(parts) -> torch.Tensor:
    """The parts' union, having checked that no sample is in two parts (or twice in one)."""
    union = torch.cat(list(parts))
    assert len(union.unique()) == len(union)
    return union


# --- what each partition covers ------------------------------------------------------------------


def test_iid_is_the_iid_split_equal_shards_remainder_dropped():
    parts = iid(5003, 7, _gen(3))
    assert [len(p) for p in parts] == [5003 // 7] * 7
    assert len(_assert_disjoint(parts)) == 7 * (5003 // 7)
    assert all(torch.equal(a, b) for a, b in zip(parts, iid_split(5003, 7, _gen(3))))


@pytest.mark.parametrize("alpha", [0.1, 0.5, 10.0])
def test_dirichlet_gives_every_sample_to_one_client(alpha):
    parts = dirichlet(LABELS, K, alpha, _gen(1), min_partition_size=10)
    assert torch.equal(torch.sort(_assert_disjoint(parts)).values, torch.arange(len(LABELS)))
    assert min(len(p) for p in parts) >= 10
    assert all(torch.equal(p, torch.sort(p).values) for p in parts)
    again = dirichlet(LABELS, K, alpha, _gen(1), min_partition_size=10)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))  # the seed fixes the split
    other = dirichlet(LABELS, K, alpha, _gen(2), min_partition_size=10)
    assert any(not torch.equal(a, b) for a, b in zip(parts, other))


def test_dirichlet_small_alpha_skews_and_large_alpha_balances_the_classes():
    skewed = np.array(partition_table(LABELS, dirichlet(LABELS, K, 0.05, _gen(0), min_partition_size=0), C))
    balanced = np.array(partition_table(LABELS, dirichlet(LABELS, K, 1000.0, _gen(0)), C))
    assert (skewed.max(axis=0) > 0.5 * PER_CLASS).mean() >= 0.8  # most classes mostly on one client
    assert np.abs(balanced - PER_CLASS / K).max() <= 10  # each client ~50 of each class


@pytest.mark.parametrize("per_client", [1, 2, 3])
def test_shards_sort_by_label_and_bound_each_clients_classes(per_client):
    parts = shards(LABELS, K, per_client, _gen(4))
    size = len(LABELS) // (K * per_client)
    assert [len(p) for p in parts] == [per_client * size] * K
    assert len(_assert_disjoint(parts)) == K * per_client * size
    # the shards, in sorted order, span ceil(size / 500) classes, +1 where one straddles a boundary
    per_shard = math.ceil(size / PER_CLASS) + (PER_CLASS % size != 0)
    assert max(len(LABELS[p].unique()) for p in parts) <= per_client * per_shard
    if per_client == 2:  # shards of 250 align with the classes of 500: exactly 2 classes or 1
        assert {len(LABELS[p].unique()) for p in parts} <= {1, 2}


def test_shards_need_a_sample_per_shard():
    assert [len(p) for p in shards(LABELS[:20], K, 2, _gen())] == [2] * K
    with pytest.raises(ValueError, match=r"data\.shards_per_client = 3 .*at most 2"):
        shards(LABELS[:20], K, 3, _gen())


def test_quantity_skews_the_sizes_and_spreads_the_labels():
    parts = quantity(len(LABELS), K, 0.5, _gen(5), min_partition_size=10)
    assert torch.equal(torch.sort(_assert_disjoint(parts)).values, torch.arange(len(LABELS)))
    sizes = [len(p) for p in parts]
    assert min(sizes) >= 10 and max(sizes) > 2 * len(LABELS) / K > 4 * min(sizes)
    counts = np.array(partition_table(LABELS, parts, C))
    for size, row in zip(sizes, counts):  # each client's labels follow the overall (uniform) mix
        if size >= 100:
            assert (row > 0).all() and np.abs(row / size - 1 / C).max() < 0.1
    everywhere = (counts > 0).sum(axis=0)
    assert (everywhere >= (np.array(sizes) >= 50).sum()).all()  # every class on every sizeable client


def test_contiguous_slices_are_disjoint_equal_and_in_order():
    slices = contiguous(10_007, 4, context=64)
    assert [len(s) for s in slices] == [10_007 // 4] * 4
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:])) and slices[0].start == 0
    assert partition_table(None, slices) == [2501] * 4
    with pytest.raises(ValueError, match=r"clients\.num_clients = 200 .*at most 153"):
        contiguous(10_007, 200, context=64)


def test_partition_table_counts_each_clients_classes():
    parts = dirichlet(LABELS, K, 0.3, _gen(6), min_partition_size=5)
    table = partition_table(LABELS, parts, C)
    assert [sum(row) for row in table] == [len(p) for p in parts]
    assert [sum(col) for col in zip(*table)] == [PER_CLASS] * C
    assert json.loads(json.dumps(table)) == table


def test_split_dispatches_on_the_spec():
    for name, check in (
        ("iid", lambda ps: {len(p) for p in ps} == {500}),
        ("dirichlet", lambda ps: sum(map(len, ps)) == 5000),
        ("shards", lambda ps: max(len(LABELS[p].unique()) for p in ps) <= 2),
        ("quantity", lambda ps: sum(map(len, ps)) == 5000),
    ):
        assert check(split(LABELS, K, PartitionSpec(name), _gen())), name  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contiguous"):
        split(LABELS, K, PartitionSpec("contiguous"), _gen())
    assert PartitionSpec("shards", shards_per_client=3).parameters == {"shards_per_client": 3}


# --- the law of the Dirichlet shares over seeds ----------------------------------------------------

SEEDS = 200


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_dirichlet_shares_have_the_dirichlet_mean_and_variance(alpha):
    """Over 200 seeds (min_partition_size=0: no redraw), the share s_ck = n_ck / n_c of class c given
    to client k has the marginal of Dir_K(alpha), Beta(alpha, (K - 1) alpha): mean 1/K and variance
    (K - 1) / (K^2 (K alpha + 1)), for each of the 10 x 10 (class, client) pairs within 5 standard
    errors.

    Standard errors, from the 200 samples: the mean's sqrt(s^2 / 200) with the pair's own sample
    variance s^2; the sample variance's sqrt((m4 - s^4 (n - 3) / (n - 1)) / n), the exact formula for
    i.i.d. samples, with the fourth central moment m4 and s^2 estimated from all 100 pairs' samples
    pooled (they share one marginal law; a pair's own 200 samples underestimate m4 at alpha = 0.1,
    whose shares are mostly ~0 with rare large values: the worst pair then reads |z| = 5.3 where the
    pooled m4 gives 3.0). The normal-theory sqrt(2 / (n - 1)) s^2 would be far too small here (the
    Beta(0.1, 0.9) kurtosis is ~9, not 3). Seen: alpha 0.1, max |z| 3.6 (mean), 3.0 (variance);
    alpha 1.0, 2.3 and 2.1."""
    shares = torch.empty(SEEDS, C, K, dtype=torch.float64)
    for seed in range(SEEDS):
        parts = dirichlet(LABELS, K, alpha, _gen(seed), min_partition_size=0)
        shares[seed] = torch.tensor(partition_table(LABELS, parts, C), dtype=torch.float64).T / PER_CLASS
    assert torch.allclose(shares.sum(dim=2), torch.ones(SEEDS, C, dtype=torch.float64))

    n = SEEDS
    mean, var = shares.mean(0), shares.var(0)  # per (class, client); var with n - 1
    z_mean = (mean - 1 / K) / (var / n).sqrt()
    m4 = ((shares - mean) ** 4).mean()  # pooled over seeds, classes and clients
    s2 = var.mean()
    se_var = ((m4 - s2**2 * (n - 3) / (n - 1)) / n).sqrt()
    expected_var = (K - 1) / (K**2 * (K * alpha + 1))
    z_var = (var - expected_var) / se_var
    assert z_mean.abs().max() < 5, z_mean.abs().max()
    assert z_var.abs().max() < 5, z_var.abs().max()

    # the pooled moments against the Beta(alpha, (K - 1) alpha) marginal's exact ones
    a, b = alpha, (K - 1) * alpha
    exact_m4 = (
        3
        * a
        * b
        * (a * b * (a + b - 6) + 2 * (a + b) ** 2)
        / ((a + b) ** 4 * (a + b + 1) * (a + b + 2) * (a + b + 3))
    )
    assert float(s2) == pytest.approx(expected_var, rel=0.05)
    assert float(m4) == pytest.approx(exact_m4, rel=0.1)


# --- the redraw rule ---------------------------------------------------------------------------


def test_an_unreachable_min_partition_size_is_an_error_naming_the_keys():
    with pytest.raises(ValueError, match=r"data\.min_partition_size = 40 .*data\.alpha") as caught:
        dirichlet(LABELS, 100, 0.01, _gen(), min_partition_size=40)
    assert isinstance(caught.value, PartitionError) and caught.value.key == "data.min_partition_size"
    assert f"no draw of {MAX_DRAWS}" in str(caught.value) and "smaller data.min_partition_size" in str(
        caught.value
    )
    with pytest.raises(ValueError, match=r"data\.min_partition_size = 40 .*data\.alpha"):
        quantity(len(LABELS), 100, 0.01, _gen(), min_partition_size=40)
    with pytest.raises(ValueError, match=r"data\.min_partition_size = 600 .*exceed the 5000"):
        dirichlet(LABELS, K, 1.0, _gen(), min_partition_size=600)


def test_a_reachable_min_partition_size_redraws():
    """alpha = 0.2 over 10 clients: the first draw leaves a client under 150 samples, a later one not."""
    first = dirichlet(LABELS, K, 0.2, _gen(0), min_partition_size=0)
    assert min(len(p) for p in first) < 150
    assert min(len(p) for p in dirichlet(LABELS, K, 0.2, _gen(0), min_partition_size=150)) >= 150


# --- the clients' batches --------------------------------------------------------------------------


def test_a_shard_smaller_than_the_batch_is_sampled_with_replacement():
    shard = torch.tensor([3, 7, 11])
    batches = ClientBatches([shard, torch.arange(100)], batch_size=8, generator=_gen(), replacement=True)
    drawn = torch.stack([batches.next(0) for _ in range(200)])
    assert drawn.shape == (200, 8) and set(drawn.unique().tolist()) == {3, 7, 11}
    counts = torch.bincount(drawn.flatten(), minlength=12)[[3, 7, 11]].double()
    assert (counts / counts.sum() - 1 / 3).abs().max() < 0.03  # uniform over the shard
    assert len(batches.next(1)) == 8 and batches.position[0] == 0  # the walk is not used
    whole = ClientBatches([shard], batch_size=8, generator=_gen())  # replacement=False: as before
    assert sorted(whole.next(0).tolist()) == [3, 7, 11]
    with pytest.raises(ValueError, match="client 1 has no samples"):
        ClientBatches([shard, shard[:0]], 8, _gen())


def _digits(*overrides: str):
    return load_config(None, ["data.name=digits", "clients.num_clients=8", *overrides])


def test_a_non_iid_task_draws_full_batches_from_small_clients_and_reports_its_partition():
    config = _digits("data.partition=dirichlet", "data.alpha=0.1", "data.min_partition_size=5")
    task = build_task(config, torch.device("cpu"), seed=0)
    sizes = task.client_sizes()
    assert sum(sizes) == len(task.y_train) and min(sizes) >= 5 and min(sizes) < 32  # some below the batch
    small = sizes.index(min(sizes))
    x, y = task.batch(small)
    assert x.shape == (32, 64) and set(y.tolist()) <= set(task.y_train[task.parts[small]].tolist())
    table = task.partition()
    assert table["partition"] == "dirichlet" and table["parameters"] == {
        "alpha": 0.1,
        "min_partition_size": 5,
    }
    assert table["sizes"] == sizes and table["unit"] == "samples" and table["num_classes"] == 10
    assert [sum(row) for row in table["counts"]] == sizes
    assert json.loads(json.dumps(table)) == table
    again = build_task(config, torch.device("cpu"), seed=0)
    assert again.partition() == table  # from the data seed
    assert build_task(config, torch.device("cpu"), seed=1).partition() != table


def test_partition_json_is_written_to_the_run_directory(tmp_path):
    task = build_task(_digits("data.partition=shards"), torch.device("cpu"), seed=0)
    run = RunDirectory(tmp_path / "run", {"seed": 0})
    path = run.write_partition(task.partition())
    run.finish({})
    assert path == tmp_path / "run" / "partition.json"
    assert json.loads(path.read_text()) == task.partition()
    assert path.read_text().startswith('{\n  "partition": "shards"')  # indent 2


def test_a_partition_that_cannot_be_made_is_a_config_error():
    for overrides, key in (
        (
            ["data.partition=dirichlet", "data.alpha=0.01", "data.min_partition_size=150"],
            "data.min_partition_size",
        ),
        (["data.partition=quantity", "data.min_partition_size=0", "clients.num_clients=300"], None),
        (["data.partition=shards", "data.shards_per_client=500"], "data.shards_per_client"),
    ):
        config = _digits(*overrides)
        if key is None:  # an empty client (min_partition_size 0, 300 clients, alpha 0.5)
            key = "data.min_partition_size"
        with pytest.raises(ConfigError, match=rf"^{key.replace('.', chr(92) + '.')} = "):
            build_task(config, torch.device("cpu"), seed=0)


def test_a_language_task_draws_each_clients_windows_from_its_own_slice():
    tokens = np.arange(1000) % 251
    spec = PartitionSpec("contiguous")
    task = LanguageTask(
        tokens, tokens[:100], 256, 16, 64, _gen(), torch.device("cpu"), num_clients=3, partition=spec
    )
    assert task.client_sizes() == [333, 333, 333]
    for client, own in enumerate(contiguous(1000, 3, 16)):
        x, y = task.batch(client)
        assert x.shape == (64, 16) and torch.equal(x[:, 1:], y[:, :-1])
        starts = x[:, 0].long()  # tokens are their positions mod 251: find each window's start
        positions = torch.tensor([own.start + int((s - own.start) % 251) for s in starts])
        assert ((positions >= own.start) & (positions + 17 <= own.stop)).all()
    assert task.partition() == {
        "partition": "contiguous",
        "parameters": {},
        "num_clients": 3,
        "unit": "tokens",
        "sizes": [333, 333, 333],
        "slices": [[0, 333], [333, 666], [666, 999]],
    }
    shared = LanguageTask(tokens, tokens[:100], 256, 16, 64, _gen(), torch.device("cpu"), num_clients=3)
    assert shared.partition()["sizes"] is None
    with pytest.raises(ValueError, match="no client sizes"):
        shared.client_sizes()
    with pytest.raises(PartitionError, match=r"clients\.num_clients = 100"):
        LanguageTask(tokens, tokens, 256, 16, 4, _gen(), torch.device("cpu"), num_clients=100, partition=spec)


# --- data.partition=iid: the batches of earlier versions, bit for bit -------------------------------


def _reference_batches(num_samples: int, num_clients: int, batch_size: int, seed: int, steps: int = 20):
    """Each client's first ``steps`` batches as the code before data.partition drew them: the
    unchanged ``iid_split``, then a frozen copy of the old ``ClientBatches`` (per-shard permutation,
    a fresh one each epoch, the whole shard as the batch when it is smaller). Also the generator's
    state afterwards (what the augmentation draws next)."""
    generator = _gen(seed)
    parts = iid_split(num_samples, num_clients, generator)
    order = [p[torch.randperm(len(p), generator=generator)] for p in parts]
    position = [0] * num_clients
    batches: list[list[torch.Tensor]] = [[] for _ in range(num_clients)]
    for _ in range(steps):
        for k in range(num_clients):
            if position[k] >= len(order[k]):
                order[k] = parts[k][torch.randperm(len(parts[k]), generator=generator)]
                position[k] = 0
            start = position[k]
            position[k] = start + batch_size
            batches[k].append(order[k][start : start + batch_size])
    return batches, generator.get_state()


def _digest(batches, state) -> str:
    digest = hashlib.sha256()
    for step in range(len(batches[0])):
        for client_batches in batches:
            digest.update(client_batches[step].numpy().astype("<i8").tobytes())
    digest.update(state.numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(
    ("clients", "seed", "digest"),
    [
        (4, 0, "dc34e3234e874eef"),  # shards of 359 > the batch of 32
        (64, 3, "71b202196100c990"),  # shards of 22 < 32: the whole shard each batch, as before
    ],
)
def test_the_default_iid_partition_gives_the_batches_of_earlier_versions(clients, seed, digest):
    """The default config's task (digits: 1,438 training samples) against the old code path: the
    same first 20 batches of every client, index for index, and the same generator state after
    them. The digests were computed by the code before data.partition existed (commit edb2dc5)."""
    config = _digits(f"clients.num_clients={clients}")
    assert config.data.partition == "iid"
    task = build_task(config, torch.device("cpu"), seed=seed)
    expected, state = _reference_batches(len(task.y_train), clients, 32, seed)
    assert _digest(expected, state) == digest
    for step in range(20):
        for k in range(clients):
            x, y = task.batch(k)
            idx = expected[k][step]
            assert torch.equal(x, task.x_train[idx]) and torch.equal(y, task.y_train[idx])
    assert torch.equal(task.generator.get_state(), state)
    assert task.client_sizes() == [len(task.y_train) // clients] * clients
    assert sum(map(sum, task.partition()["counts"])) == clients * (len(task.y_train) // clients)


def test_iid_tasks_never_sample_with_replacement():
    task = ClassificationTask(
        torch.randn(40, 3),
        torch.arange(40) % 4,
        torch.randn(8, 3),
        torch.arange(8) % 4,
        4,
        10,
        32,
        _gen(),
        torch.device("cpu"),
    )
    assert not task.batches.replacement and len(task.batch(0)[1]) == 4  # the whole shard of 4


# ------------------------------------------------------------------ at the scale of 10^5 clients
def _loop_dirichlet(labels, num_clients, alpha, generator, min_partition_size):
    """The definition, client by client (what dirichlet computed before it grouped all clients in
    one sort): the same draws, so the same parts."""
    from federated.data.partitions import _bounds, _dirichlet

    members = [(labels == c).nonzero().flatten() for c in range(int(labels.max()) + 1)]
    for _ in range(MAX_DRAWS):
        proportions = _dirichlet(alpha, (len(members), num_clients), generator)
        pieces = [[] for _ in range(num_clients)]
        for c, idx in enumerate(members):
            idx = idx[torch.randperm(len(idx), generator=generator)]
            bounds = _bounds(len(idx), proportions[c])
            for k in range(num_clients):
                pieces[k].append(idx[bounds[k] : bounds[k + 1]])
        parts = [torch.sort(torch.cat(p)).values for p in pieces]
        if min(len(p) for p in parts) >= min_partition_size:
            return parts
    return None


@pytest.mark.parametrize("seed", range(6))
def test_the_grouped_splits_equal_their_client_by_client_definition(seed):
    labels = torch.randint(0, 1 + 3 * seed, (400 + 37 * seed,), generator=_gen(seed))
    num_clients, alpha = (1, 3, 8, 20, 40, 7)[seed], (0.05, 0.3, 1.0, 10.0, 0.5, 100.0)[seed]
    expected = _loop_dirichlet(labels, num_clients, alpha, _gen(seed), seed % 3)
    if expected is None:
        with pytest.raises(PartitionError):
            dirichlet(labels, num_clients, alpha, _gen(seed), min_partition_size=seed % 3)
    else:
        got = dirichlet(labels, num_clients, alpha, _gen(seed), min_partition_size=seed % 3)
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    # shards, against its definition
    g = _gen(seed)
    order = torch.randperm(len(labels), generator=g)
    order = order[torch.sort(labels[order], stable=True).indices]
    count = num_clients * 2
    size = len(labels) // count
    pieces = [order[j * size : (j + 1) * size] for j in range(count)]
    own = torch.randperm(count, generator=g).view(num_clients, 2).tolist()
    expected_shards = [torch.sort(torch.cat([pieces[j] for j in o])).values for o in own]
    got_shards = shards(labels, num_clients, 2, _gen(seed))
    assert all(torch.equal(a, b) for a, b in zip(got_shards, expected_shards, strict=True))
    table = partition_table(labels, got_shards, int(labels.max()) + 1)
    assert table == [torch.bincount(labels[p], minlength=int(labels.max()) + 1).tolist() for p in got_shards]


def test_a_hundred_thousand_clients_are_split_in_one_pass():
    """Dirichlet (alpha 0.3), shards and quantity over 10^5 clients of 2 x 10^6 samples: every sample
    given once, min_partition_size respected, a draw that cannot meet it refused after MAX_DRAWS
    draws (no unbounded redraw); about a second each here, where a loop over the clients took 12 s."""
    num_clients = 100_000
    labels = torch.randint(0, 10, (20 * num_clients,), generator=_gen(0))
    for parts in (
        dirichlet(labels, num_clients, 0.3, _gen(1), min_partition_size=0),
        shards(labels, num_clients, 2, _gen(2)),
        quantity(len(labels), num_clients, 5.0, _gen(3), min_partition_size=1),
    ):
        assert len(parts) == num_clients
        union = torch.cat(parts)
        assert len(union) == len(torch.unique(union)) and len(union) <= len(labels)
    assert min(len(p) for p in parts) >= 1
    with pytest.raises(PartitionError, match=f"no draw of {MAX_DRAWS} gave each of the 100000 clients 5"):
        dirichlet(labels, num_clients, 0.3, _gen(4), min_partition_size=5)
