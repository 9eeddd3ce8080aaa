"""The DDP communication hook on 2 gloo processes (CPU) gives the simulator's over-the-air round:
the gradients DDP leaves in ``.grad`` on each rank equal ``laser.transmit_round`` over the two ranks'
gradients in one process, same channel seed and energy, for Z-SGD and LASER over noisy AWGN."""

import importlib.util
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from federated.distributed import free_port
from laser import transmit_round

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
WORLD = 2

spec = importlib.util.spec_from_file_location("ddp_worker", HERE / "_ddp_worker.py")
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)


def run_rank(rank, port, out):
    worker.main(rank, WORLD, port, out)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Both ranks' results: each rank's gradients after every iteration, for each method. The ranks
    are forked from this process once it has drawn channel noise (Sionna imported: seconds saved per
    rank); each sets one torch thread first."""
    out = tmp_path_factory.mktemp("ddp")
    worker.make_channel()(torch.ones(2, 2), energy=1.0)
    context = mp.start_processes(
        run_rank, args=(free_port(), out), nprocs=WORLD, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 120
    try:
        while not context.join(timeout=1):
            assert time.monotonic() < deadline, "the ranks did not finish in 120 s"
    finally:
        for proc in context.processes:
            if proc.is_alive():
                proc.kill()
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def simulated(method):
    """The same rounds in one process: both ranks' gradients through transmit_round."""
    model = worker.make_model()
    params = list(model.parameters())
    compressor = worker.make_compressor(method)
    server = compressor.make_server(params)
    clients = [compressor.make_client(params, r) for r in range(WORLD)]
    channel = worker.make_channel()
    rounds = []
    for iteration in range(worker.ITERATIONS):
        grads = [torch.autograd.grad(worker.loss(model, r, iteration), params) for r in range(WORLD)]
        rounds.append(transmit_round(channel, server, clients, grads, energy=worker.ENERGY))
    return rounds


@pytest.mark.parametrize("method", worker.METHODS)
def test_the_hook_gives_the_simulators_round(ranks, method):
    expected = simulated(method)
    for rank in ranks:
        got = rank[method]
        assert got["iteration"] == worker.ITERATIONS
        for iteration, out in enumerate(expected):
            for g, e in zip(got["grads"][iteration], out.gradient):
                torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["noise_var"], expected[-1].noise_var, rtol=1e-6, atol=0)
        torch.testing.assert_close(got["energy_used"], expected[-1].energy_used, rtol=1e-5, atol=0)
    assert bool((expected[-1].noise_var > 0).all())  # a noisy round: the match is not the exact mean's
    model = worker.make_model()
    grads = [torch.autograd.grad(worker.loss(model, r, 0), list(model.parameters())) for r in range(WORLD)]
    exact = [torch.stack(g).mean(0) for g in zip(*grads)]
    assert max(float((g - e).abs().max()) for g, e in zip(ranks[0][method]["grads"][0], exact)) > 1e-4


def test_laser_sends_less_than_zsgd_and_its_estimate_is_low_rank(ranks):
    first = simulated("laser")[0]
    assert first.channel_uses < simulated("zsgd")[0].channel_uses
    weight = ranks[0]["laser"]["grads"][0][0]  # the 8 x 6 matrix: rank 2 from LASER's factor
    assert int(torch.linalg.matrix_rank(weight)) == 2


def test_a_second_bucket_is_refused_with_the_way_out(ranks):
    for rank in ranks:
        message = rank["two_buckets"]
        assert message is not None and "bucket_cap_mb=one_bucket_cap_mb(model)" in message


def test_channels_seeded_differently_on_the_ranks_are_refused(ranks):
    for rank in ranks:
        message = rank["unlike_seeds"]
        assert message is not None and "not in the same state on every rank" in message


def test_the_example_trains_in_a_world_of_one():
    """examples/ddp_ota.py without a launcher: one process, a gloo group of one, a few steps."""
    spec = importlib.util.spec_from_file_location("ddp_ota_example", ROOT / "examples" / "ddp_ota.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--steps", "20"])
    assert out["iterations"] == 20 and 0.0 <= out["accuracy"] <= 1.0
    assert not torch.distributed.is_initialized()  # the example leaves no process group behind
