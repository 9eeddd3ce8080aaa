"""The Flower adapter, driven with constructed messages (no Ray, no SuperLink): over a noiseless
channel its Z-SGD aggregate is FedAvg's; over a noisy one it is not, by the noise the channel records;
LASER's client side survives the rounds in ``context.state``; the example apps run end to end, and
its ClientApp reaches a fresh process as Ray ships it to its workers; the README's Flower block runs."""

import importlib.util
import math
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp.exception import AggregationError
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.task_identity import TaskIdentity
from sklearn.datasets import load_digits

from channels import AWGNChannel, FadingChannel, RayleighFading
from federated.adapters.flower import (
    BLOCK_PREFIX,
    CLIENT_STATE_KEY,
    INDEX_KEY,
    SHARED_KEY,
    OTAFedAvg,
    client_reply,
    state_from_records,
)
from laser import LaserCompressor, QSGDCompressor, ZSGDCompressor, transmit_round

ROOT = Path(__file__).resolve().parents[3]
SHAPES = {"fc1.weight": (16, 12), "fc1.bias": (16,), "fc2.weight": (4, 16), "fc2.bias": (4,)}


@pytest.fixture(autouse=True)
def flower_run(monkeypatch):
    """What Flower's runtime sets before a ServerApp builds its messages."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


class Grid:
    """The part of Flower's Grid a strategy's sampling calls."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return self.nodes


def global_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def trained(message, seed):
    """A client's arrays after 'training': the received ones plus a change of its own."""
    rng = np.random.default_rng(seed)
    received = {k: v.numpy() for k, v in message.content["arrays"].items()}
    return {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in received.items()}


def context(node, **node_config):
    """A node's Context, its state empty, as a SuperNode starts it."""
    return Context(run_id=1, node_id=node, node_config=node_config, state=RecordDict(), run_config={})


def record(arrays):
    """An ArrayRecord of numpy arrays, under their names."""
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})


def reply(message, arrays, num_examples, **metrics):
    """A reply as a FedAvg ClientApp builds it: its arrays, and its metrics with num-examples."""
    content = RecordDict(
        {"arrays": record(arrays), "metrics": MetricRecord({"num-examples": num_examples, **metrics})}
    )
    return Message(content, reply_to=message)


def round_trip(strategy, nodes, weights, server_round=1):
    """The strategy's messages to ``nodes`` and each node's FedAvg reply."""
    messages = strategy.configure_train(server_round, record(global_arrays()), ConfigRecord(), Grid(nodes))
    replies = [
        reply(
            m,
            trained(m, seed=m.metadata.dst_node_id),
            weights[m.metadata.dst_node_id],
            loss=m.metadata.dst_node_id / 100,
        )
        for m in messages
    ]
    return list(messages), replies


def test_zsgd_over_a_noiseless_channel_is_fedavg():
    weights = {11: 10, 22: 30, 33: 60}
    strategy = OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0)
    messages, replies = round_trip(strategy, weights, weights)
    assert strategy.client_indices == {11: 0, 22: 1, 33: 2}
    for m in messages:  # FedAvg's records, plus the client's index
        assert m.content["config"][INDEX_KEY] == strategy.client_indices[m.metadata.dst_node_id]
        assert m.content["config"]["server-round"] == 1
        assert set(m.content["arrays"]) == set(SHAPES)
    ours, metrics = strategy.aggregate_train(1, replies)
    theirs, their_metrics = FedAvg().aggregate_train(1, replies)
    assert list(ours) == list(theirs)
    for k in SHAPES:
        assert ours[k].numpy().dtype == np.float32
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=0, atol=1e-6)
    assert metrics["loss"] == pytest.approx(their_metrics["loss"])
    assert metrics["ota-noise-var"] == 0.0 and metrics["ota-clients-heard"] == 3
    # the weights are num-examples: the plain mean is far from it
    plain = np.mean([r.content["arrays"]["fc1.bias"].numpy() for r in replies], axis=0)
    assert np.abs(plain - ours["fc1.bias"].numpy()).max() > 1e-3


def test_zsgd_over_a_noiseless_fading_channel_is_fedavg_too():
    weights = {5: 1, 9: 3}
    channel = FadingChannel(RayleighFading(), noise_var=0.0, generator=torch.Generator().manual_seed(0))
    strategy = OTAFedAvg(channel, energy=1.0)
    _, replies = round_trip(strategy, weights, weights)
    ours, _ = strategy.aggregate_train(1, replies)
    theirs, _ = FedAvg().aggregate_train(1, replies)
    for k in SHAPES:
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=0, atol=1e-6)


def test_over_a_noisy_channel_the_aggregate_differs_by_the_recorded_noise():
    weights = {11: 10, 22: 30, 33: 60}
    channel = AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0))
    strategy = OTAFedAvg(channel, energy=10.0)
    _, replies = round_trip(strategy, weights, weights)
    ours, metrics = strategy.aggregate_train(1, replies)
    theirs, _ = FedAvg().aggregate_train(1, replies)
    error = np.concatenate([(ours[k].numpy() - theirs[k].numpy()).ravel() for k in SHAPES])
    assert np.abs(error).max() > 1e-3
    record = strategy.records[1]  # the channel's record of the round: energy, noise, uses
    entries = sum(int(np.prod(s)) for s in SHAPES.values())
    assert record.channel_uses == entries
    assert record.energy_used.shape == (3,)
    # each client within its budget (the norm split: a block's tightest client spends that block's share)
    assert bool((record.energy_used <= 10.0 + 1e-6).all()) and bool((record.energy_used > 0).all())
    assert bool((record.noise_var > 0).all())
    assert metrics["ota-noise-var"] == pytest.approx(
        sum(float(v) * float(np.prod(s)) for v, s in zip(record.noise_var, SHAPES.values())) / entries
    )
    assert metrics["ota-channel-uses"] == entries and metrics["ota-energy-used"] <= 10.0 + 1e-6
    assert metrics["ota-energy-used"] == pytest.approx(float(record.energy_used.mean()))
    # the difference from FedAvg is the channel's noise, of the variance it reports (276 entries)
    assert 0.6 < float(np.mean(error.astype(np.float64) ** 2)) / metrics["ota-noise-var"] < 1.6
    # and the aggregate is the simulator's round of the same changes, same seed and weights
    sent = global_arrays()
    params = [torch.from_numpy(v) for v in sent.values()]
    by_node = sorted(replies, key=lambda r: r.metadata.src_node_id)  # 11, 22, 33: indices 0, 1, 2
    changes = [
        [torch.from_numpy(r.content["arrays"][k].numpy()) - p for k, p in zip(sent, params)] for r in by_node
    ]
    zsgd = ZSGDCompressor()
    out = transmit_round(
        AWGNChannel(noise_var=1.0, generator=torch.Generator().manual_seed(0)),
        zsgd.make_server(params),
        [zsgd.make_client(params, k) for k in range(3)],
        changes,
        energy=10.0,
        weights=torch.tensor([10.0, 30.0, 60.0], dtype=torch.float64),
    )
    for k, p, g in zip(sent, params, out.gradient):
        np.testing.assert_allclose(ours[k].numpy(), (p + g).numpy(), rtol=0, atol=1e-6)
    torch.testing.assert_close(record.energy_used, out.energy_used)
    torch.testing.assert_close(record.noise_var, out.noise_var)


def test_snr_db_sets_the_budget_per_channel_use():
    """``snr_db``: a client's round budget is the SNR times the noise per use times the round's 276 uses,
    the same round as ``energy`` of that budget."""
    weights = {1: 2, 2: 5}
    entries = sum(int(np.prod(s)) for s in SHAPES.values())
    budget = 10.0 * 0.5 * entries  # 10 dB, noise variance 0.5
    records = []
    for kwargs in ({"snr_db": 10.0}, {"energy": budget}):
        channel = AWGNChannel(noise_var=0.5, generator=torch.Generator().manual_seed(2))
        strategy = OTAFedAvg(channel, **kwargs)
        _, replies = round_trip(strategy, weights, weights)
        strategy.aggregate_train(1, replies)
        records.append(strategy.records[1])
    torch.testing.assert_close(records[0].energy_used, records[1].energy_used)
    torch.testing.assert_close(records[0].noise_var, records[1].noise_var)
    assert bool((records[0].energy_used <= budget * (1 + 1e-6)).all())
    assert float(records[0].energy_used.max()) > 0.1 * budget  # the budget is spent, not a tenth of it


def test_node_ids_get_stable_indices_in_first_seen_order():
    strategy = OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0, fraction_train=0.5, min_train_nodes=2)
    nodes = [901, 17, 4242, 5]
    seen = []
    for server_round in range(1, 6):
        messages = strategy.configure_train(
            server_round, record(global_arrays()), ConfigRecord(), Grid(nodes)
        )
        sampled = [m.metadata.dst_node_id for m in messages]
        seen += sorted(n for n in sampled if n not in seen)
        for m in messages:
            assert m.content["config"][INDEX_KEY] == seen.index(m.metadata.dst_node_id)
    assert strategy.client_indices == {n: i for i, n in enumerate(seen)}


def test_client_reply_without_a_compressor_is_the_fedavg_reply():
    strategy = OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0)
    message = list(strategy.configure_train(1, record(global_arrays()), ConfigRecord(), Grid([7, 8])))[0]
    arrays = {k: torch.from_numpy(v) for k, v in trained(message, 0).items()}
    out = client_reply(message, context(7), arrays, {"num-examples": 3})
    assert out.metadata.src_node_id == message.metadata.dst_node_id
    assert {k: v.numpy().tolist() for k, v in out.content["arrays"].items()} == {
        k: v.numpy().tolist() for k, v in arrays.items()
    }
    assert dict(out.content["metrics"]) == {"num-examples": 3}


def test_laser_with_the_client_helper_matches_the_simulator_round_by_round():
    """Three rounds of LASER over a noisy channel: the strategy's global model equals the simulator's
    (``transmit_round`` on client sides held in memory, same channel seed), which holds only if each
    client's error-feedback memory survives the rounds in ``context.state``."""
    nodes, weights = [31, 12, 77], {31: 5, 12: 2, 77: 9}
    method = dict(rank=2, seed=3)
    strategy = OTAFedAvg(
        AWGNChannel(noise_var=0.5, generator=torch.Generator().manual_seed(1)),
        energy=30.0,
        compressor=LaserCompressor(**method),
    )
    contexts = {
        n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={}) for n in nodes
    }
    params = [torch.zeros(s) for s in SHAPES.values()]
    simulator = LaserCompressor(**method)
    sim_server = simulator.make_server(params)
    sim_clients = {}
    sim_channel = AWGNChannel(noise_var=0.5, generator=torch.Generator().manual_seed(1))
    current = global_arrays(0)
    for server_round in range(1, 4):
        messages = strategy.configure_train(server_round, record(current), ConfigRecord(), Grid(nodes))
        for m in messages:  # the server's broadcast: its tensors, and their layout in the config
            assert SHARED_KEY in m.content and SHARED_KEY in m.content["config"]
        replies, changes = {}, {}
        for m in messages:
            node = m.metadata.dst_node_id
            mine = trained(m, seed=100 * server_round + node)
            received = {k: torch.from_numpy(v.numpy()) for k, v in m.content["arrays"].items()}
            changes[node] = [torch.from_numpy(mine[k]) - received[k] for k in received]
            replies[node] = client_reply(
                m, contexts[node], mine, {"num-examples": weights[node]}, compressor=LaserCompressor(**method)
            )
            assert sorted(replies[node].content["arrays"]) == [
                f"{BLOCK_PREFIX}{b}" for b in range(len(sim_server.block_sizes()))
            ]
        new, metrics = strategy.aggregate_train(server_round, list(replies.values())[::-1])
        order = sorted(nodes, key=strategy.client_index)
        for node in order:
            index = strategy.client_index(node)
            sim_clients.setdefault(index, simulator.make_client(params, index))
        out = transmit_round(
            sim_channel,
            sim_server,
            [sim_clients[strategy.client_index(n)] for n in order],
            [changes[n] for n in order],
            energy=30.0,
            weights=torch.tensor([float(weights[n]) for n in order], dtype=torch.float64),
        )
        expected = [v + g.numpy() for v, g in zip(current.values(), out.gradient)]
        got = [v.numpy() for v in new.values()]
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-5)
        assert metrics["ota-noise-var"] > 0
        current = dict(zip(current, got))
    for node in nodes:  # the memory in the records is the simulator client's
        state = contexts[node].state
        saved = state_from_records(state[CLIENT_STATE_KEY], state[f"{CLIENT_STATE_KEY}-layout"]["layout"])
        memory = sim_clients[strategy.client_index(node)].memory
        assert len(saved["memory"]) == len(memory) == 2  # both weight matrices are compressed
        for kept, expected in zip(saved["memory"], memory):
            torch.testing.assert_close(kept, expected, rtol=0, atol=1e-6)
            assert float(expected.abs().max()) > 1e-3
    assert strategy.server.state_dict()["step"] == 3


def test_what_cannot_work_over_flower_is_refused():
    channel = AWGNChannel(noise_var=0.0)
    with pytest.raises(ValueError, match="exactly one of energy"):
        OTAFedAvg(channel)
    with pytest.raises(ValueError, match="one channel pass"):
        OTAFedAvg(channel, energy=1.0, compressor=LaserCompressor(factors_per_round=2))
    with pytest.raises(ValueError, match="analog"):
        OTAFedAvg(channel, energy=1.0, compressor=QSGDCompressor())
    # a compressed strategy and a ClientApp that replies with plain arrays
    strategy = OTAFedAvg(channel, energy=1.0, compressor=LaserCompressor(rank=2))
    weights = {1: 1, 2: 1}
    _, replies = round_trip(strategy, weights, weights)
    with pytest.raises(AggregationError, match="client_reply"):
        strategy.aggregate_train(1, replies)


def test_integer_arrays_are_averaged_exactly_and_keep_their_dtype():
    strategy = OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0)
    sent = {"w": np.ones((3, 2), np.float32), "count": np.array(10, np.int64)}
    messages = strategy.configure_train(1, record(sent), ConfigRecord(), Grid([1, 2]))
    replies = []
    for m, (count, n) in zip(messages, [(13, 1), (17, 3)]):
        replies.append(
            reply(m, {"w": np.full((3, 2), 2.0, np.float32), "count": np.array(count, np.int64)}, n)
        )
    new, _ = strategy.aggregate_train(1, replies)
    assert new["count"].numpy().dtype == np.int64
    assert int(new["count"].numpy()) == 16  # (13 * w + 17 * w') / (w + w'), rounded, whichever order
    np.testing.assert_allclose(new["w"].numpy(), 2.0, atol=1e-6)


def load_example():
    """examples/flower_ota.py as a module (not under its own name, which the worker test imports)."""
    spec = importlib.util.spec_from_file_location("flower_ota_example", ROOT / "examples" / "flower_ota.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_the_example_apps_run_in_one_process_without_ray():
    """examples/flower_ota.py: its ServerApp's strategy and its ClientApp, two rounds of LASER on 3
    nodes, Flower's grid played by a loop that calls the ClientApp as a SuperNode would."""
    example = load_example()
    nodes = [101, 202, 303]
    contexts = {
        n: context(n, **{"partition-id": i, "num-partitions": len(nodes)}) for i, n in enumerate(nodes)
    }

    class LocalGrid(Grid):
        def send_and_receive(self, messages, *, timeout=None):
            return [example.client_app(m, contexts[m.metadata.dst_node_id]) for m in messages]

    strategy, result = example.run(LocalGrid(nodes), "laser", rounds=2)
    assert sorted(strategy.records) == [1, 2]
    assert all(CLIENT_STATE_KEY in c.state for c in contexts.values())
    accuracy = [result.evaluate_metrics_serverapp[r]["accuracy"] for r in (0, 2)]
    assert accuracy[1] > accuracy[0]


def test_without_ray_the_script_exits_2_with_the_line_that_installs_it(monkeypatch, capsys):
    """``python examples/flower_ota.py`` without Ray: status 2 and one line, the install command."""
    script = ROOT / "examples" / "flower_ota.py"
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec("ray") is None, Ray installed or not
    monkeypatch.setattr(sys, "argv", [str(script), "--rounds", "1"])
    monkeypatch.syspath_prepend(str(script.parent))  # as running the script puts it first
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.modules.pop("flower_ota", None)  # the script imports itself under its own name
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'flwr[simulation]==1.42.*'" in err


# The script's side: examples/flower_ota.py run as a script, with Ray's presence faked and
# run_simulation replaced by what Ray does with the ClientApp before any worker runs it, pickling it
# with cloudpickle (Ray's serializer is its copy of cloudpickle).
SHIP = """
import importlib.machinery, runpy, sys, types
from pathlib import Path
import cloudpickle, flwr.simulation

script, blob = sys.argv[1:]
def run_simulation(*, server_app, client_app, num_supernodes, backend_config):
    Path(blob).write_bytes(cloudpickle.dumps(client_app))
flwr.simulation.run_simulation = run_simulation
sys.modules["ray"] = types.ModuleType("ray")
sys.modules["ray"].__spec__ = importlib.machinery.ModuleSpec("ray", None)
sys.argv = [script, "--rounds", "1", "--clients", "2"]
sys.path[0] = str(Path(script).parent)  # as `python examples/flower_ota.py` sets it
runpy.run_path(script, run_name="__main__")
"""

# A worker's side: a fresh process whose __main__ is not the example (a Ray worker's is Ray's
# default_worker.py), with the script's directory on its path as Ray gives it; it unpickles the
# ClientApp and answers one train message of the example's LASER strategy for partition 0 of 2.
WORKER = """
import pickle, sys
from pathlib import Path
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from torch import nn
from channels import AWGNChannel
from federated.adapters.flower import OTAFedAvg
from laser import LaserCompressor

examples, blob = sys.argv[1:]
sys.path.insert(1, examples)
client_app = pickle.loads(Path(blob).read_bytes())
for name in ("_run_id", "_node_id", "_task_id"):
    setattr(TaskIdentity, name, 1)
class Grid:
    def get_node_ids(self):
        return [5, 6]
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))  # the example's
strategy = OTAFedAvg(AWGNChannel(noise_var=1.0), energy=100.0, compressor=LaserCompressor(rank=2))
config = ConfigRecord({"lr": 0.1, "local-steps": 2, "method": "laser"})
message = list(strategy.configure_train(1, ArrayRecord(model.state_dict()), config, Grid()))[0]
node_config = {"partition-id": 0, "num-partitions": 2}
context = Context(run_id=1, node_id=5, node_config=node_config, state=RecordDict(), run_config={})
reply = client_app(message, context)
assert not reply.has_error(), reply.error
print(int(reply.content["metrics"]["num-examples"]))
"""


@pytest.mark.slow
def test_the_client_app_the_script_hands_to_ray_runs_in_a_fresh_worker(tmp_path):
    """Ray's workers failed with "Can't get attribute 'digits' on <module '__main__'>": the script
    handed over its own ``__main__`` apps, whose cached ``digits`` pickles by name, looked up in the
    worker's ``__main__``. The apps it hands over now come from the example imported as a module."""
    script, blob = ROOT / "examples" / "flower_ota.py", tmp_path / "client_app.pkl"
    shipped = subprocess.run(
        [sys.executable, "-c", SHIP, str(script), str(blob)], capture_output=True, text=True, cwd=tmp_path
    )
    assert shipped.returncode == 0, shipped.stderr
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, str(script.parent), str(blob)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.split() == ["750"]  # partition 0 of the 1500 training digits, in 2


@pytest.mark.slow
def test_the_readme_flower_block_runs_as_written():
    """The README's Flower block, exec'd as tests/test_readme.py does, then run: its ServerApp's 20
    rounds on 3 nodes, each train message answered by its ClientApp (which once called an undefined
    ``local_training``), and the global model learns the digits."""
    readme = (ROOT / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "@client_app.train()" in b
    )
    app: dict = {}
    exec(compile(block, "README.md", "exec"), app)
    nodes = [101, 202, 303]
    contexts = {
        n: context(n, **{"partition-id": i, "num-partitions": len(nodes)}) for i, n in enumerate(nodes)
    }
    sent = []

    class LocalGrid(Grid):
        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)  # train messages only: the block's ClientApp has no evaluate
            replies = [app["client_app"](m, contexts[m.metadata.dst_node_id]) for m in messages]
            assert not [r.error for r in replies if r.has_error()]
            sent.extend(messages[:1])
            return replies

    app["main"](LocalGrid(nodes), context(0))
    assert [m.metadata.message_type for m in sent] == ["train"] * 20

    digits = load_digits()
    x, y = torch.tensor(digits.data / 16, dtype=torch.float32), torch.tensor(digits.target)

    def accuracy(arrays):
        model = app["make_model"]()
        model.load_state_dict(arrays.to_torch_state_dict())
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    assert accuracy(sent[-1].content["arrays"]) > accuracy(sent[0].content["arrays"]) + 0.3


@pytest.mark.slow
def test_the_example_runs_under_flowers_simulation_engine_on_ray(tmp_path):
    """``python examples/flower_ota.py`` as its users run it: Flower's run_simulation starts Ray (in
    the dev extra with flwr[simulation]), ships the ClientApp to Ray's worker processes, and two
    rounds of LASER over the air end with the script's summary line, exit status 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "flower_ota.py"), "--rounds", "2", "--clients", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "laser over the air: test accuracy" in done.stdout + done.stderr
    assert "after 2 rounds" in done.stdout + done.stderr


def test_flowers_central_dp_wrapper_over_the_adapter_is_privacy_modes_central_pass():
    # Flower's DifferentialPrivacyServerSideFixedClipping around OTAFedAvg over a noiseless channel (noise
    # multiplier 0: its clip alone) gives the sent model plus the mean of the flat-clipped changes, which
    # is what PassOptions(central=) decodes before its noise (here 1e-9 of the clip)
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

    from laser import PassOptions

    weights = {11: 20, 22: 20, 33: 20}  # Flower's DP wrapper needs uniform weights
    clip = 0.5
    strategy = DifferentialPrivacyServerSideFixedClipping(
        OTAFedAvg(AWGNChannel(noise_var=0.0), energy=1.0), 0.0, clip, len(weights)
    )
    messages, replies = round_trip(strategy, weights, weights)
    theirs, _ = strategy.aggregate_train(1, replies)
    sent = global_arrays()
    changes = [
        [torch.from_numpy(r.content["arrays"][k].numpy().astype(np.float64) - sent[k]) for k in SHAPES]
        for r in replies
    ]
    assert all(math.sqrt(sum(float(c.square().sum()) for c in change)) > clip for change in changes)
    method = ZSGDCompressor()
    params = [torch.zeros(s, dtype=torch.float64) for s in SHAPES.values()]
    channel = AWGNChannel(noise_var=0.0, generator=torch.Generator().manual_seed(0))
    ours = transmit_round(
        channel,
        method.make_server(params),
        [method.make_client(params, k) for k in range(3)],
        changes,
        PassOptions(energy=1.0, clip=clip, central=1e-9),
    )
    for k, mean in zip(SHAPES, ours.gradient):
        np.testing.assert_allclose(theirs[k].numpy(), sent[k] + mean.numpy(), rtol=0, atol=1e-6)
