"""LASER's compression time against PyTorch's PowerSGD DDP communication hook, same rank, same gradients.

Gradients: random (fixed seed) tensors with the parameter shapes of this repository's models, the
MNIST-1D CNN of ``configs/mnist1d_laser.yaml``, the CIFAR ResNet-18 and (full runs only) the
GPT-2 124M of the LASER paper. Per rank r in 1, 2, 4, 8, each case below runs once per repeat, the
cases taking turns (``common.time_interleaved``); the table shows the median ms per iteration.

* ``laser_2pass``: ``LaserCompressor(rank=r, min_compression_rate=2, factors_per_round=2)``, i.e.
  PowerSGD as published (P, then Q), one client: ``encode``, ``decode`` (-> None),
  ``encode_pass``, ``decode`` with the noiseless channel's estimates (the blocks themselves).
  It compresses the same tensors as the hook (LASER counts both factors' channel uses in its rule).
* ``laser_1pass``: ``factors_per_round=1``, LASER proper (one factor per round, alternating sides):
  ``encode``, ``decode``. Its rule counts one factor, so it may compress a few more tensors.
* ``hook``: ``torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook.powerSGD_hook`` with
  ``PowerSGDState(matrix_approximation_rank=r, min_compression_rate=2, use_error_feedback=True,
  warm_start=True, orthogonalization_epsilon=0)`` on a one-process gloo group, all gradients in one
  bucket, ``.wait()`` on its future. It includes three allreduces on a one-process group (nearly
  free; ``allreduce_x3`` times three bare ones for scale). Refilling the bucket with the gradients
  before each call (the hook overwrites it) is not timed.
* ``hook_same_shape``: the same with ``batch_tensors_with_same_shape=True`` (one bmm per shape, as
  LASER does).
* ``batched_hook``: ``batched_powerSGD_hook`` (the whole bucket as one square matrix: a different,
  cheaper algorithm, shown for scale only). In torch 2.13 it fails at once (AssertionError: it hands
  ``_orthogonalize`` a 2-D matrix, which expects a batch since pytorch/pytorch#75157); the error is
  recorded, and the hook is timed with ``_orthogonalize`` given the matrix as a batch of one
  (``batched_hook_error`` and ``batched_hook_patched`` in the JSON).

Ratios are hook / LASER medians: above 1 means LASER is faster.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from common import emit, machine_info, parse_args, print_table, summarize, time_interleaved  # noqa: E402
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd  # noqa: E402

from federated.config import load_config  # noqa: E402
from federated.models import build_model  # noqa: E402
from federated.models.gpt import GPT, padded_vocab  # noqa: E402
from federated.models.resnet import ResNet18  # noqa: E402
from laser import LaserCompressor  # noqa: E402

RANKS = (1, 2, 4, 8)
MIN_COMPRESSION_RATE = 2
MNIST1D_FEATURES = 40  # MNIST-1D signals have 40 samples (federated/data/datasets.py, load_mnist1d)


# ------------------------------------------------------------------------------------ gradients
def model_shapes(name: str) -> list[torch.Size]:
    """Parameter shapes, in the models' own order (what the simulator hands the compressor)."""
    if name == "mnist1d_cnn":
        config = load_config(str(Path(__file__).resolve().parent.parent / "configs" / "mnist1d_laser.yaml"))
        model = build_model(config.model, {"num_features": MNIST1D_FEATURES, "num_classes": 10}, seed=0)
    elif name == "cifar_resnet18":
        with torch.device("meta"):
            model = ResNet18(num_classes=10)
    elif name == "gpt2_124m":
        with torch.device("meta"):  # the paper's setting (federated/models/gpt.py, GPT docstring)
            model = GPT(
                vocab_size=padded_vocab(50257), context=512, layers=12, heads=12, width=768, dropout=0.2
            )
    else:
        raise ValueError(name)
    return [p.shape for p in model.parameters()]


def random_gradients(shapes: list[torch.Size], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


# ---------------------------------------------------------------------------------- hook side
class Bucket:
    """Stands in for ``torch.distributed.GradBucket``, which has no Python constructor
    (``GradBucket()`` raises "No constructor defined!"). It offers what the hooks call: ``index``,
    ``is_last``, ``buffer``, ``set_buffer``, ``gradients`` (views of the buffer, shaped like the
    parameters, as DDP's) and ``parameters``. One bucket holds every gradient."""

    def __init__(self, grads: list[torch.Tensor]) -> None:
        self.flat = torch.cat([g.reshape(-1) for g in grads])
        self.shapes = [g.shape for g in grads]
        self.params = [torch.empty(0) for _ in grads]  # the hooks never read them
        self._buffer = self.flat.clone()

    def refill(self) -> None:
        """Fresh gradients in the buffer (the hooks overwrite it; ``batched_powerSGD_hook`` resizes it)."""
        if self._buffer.numel() != self.flat.numel():
            self._buffer = self.flat.clone()
        else:
            self._buffer.copy_(self.flat)

    def index(self) -> int:
        return 0

    def is_last(self) -> bool:
        return True

    def buffer(self) -> torch.Tensor:
        return self._buffer

    def set_buffer(self, tensor: torch.Tensor) -> None:
        self._buffer = tensor

    def parameters(self) -> list[torch.Tensor]:
        return self.params

    def gradients(self) -> list[torch.Tensor]:
        views, offset = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            views.append(self._buffer[offset : offset + n].view(shape))
            offset += n
        return views


def hook_case(hook, grads: list[torch.Tensor], rank: int, same_shape: bool = False):
    """The hook's per-iteration call and its untimed refill, past its vanilla-allreduce iterations
    (``start_powerSGD_iter`` must be > 1 with error feedback or warm start: 2, the smallest)."""
    state = psgd.PowerSGDState(
        process_group=None,
        matrix_approximation_rank=rank,
        start_powerSGD_iter=2,
        min_compression_rate=MIN_COMPRESSION_RATE,
        use_error_feedback=True,
        warm_start=True,
        orthogonalization_epsilon=0,
        random_seed=0,
        batch_tensors_with_same_shape=same_shape,
    )
    bucket = Bucket(grads)
    for _ in range(state.start_powerSGD_iter):
        bucket.refill()
        hook(state, bucket).wait()
    if state.iter != state.start_powerSGD_iter:
        raise RuntimeError(f"the hook state is at iteration {state.iter}, not {state.start_powerSGD_iter}")
    return (lambda: hook(state, bucket).wait()), bucket.refill


def _orthogonalize_2d(matrices: torch.Tensor, epsilon: float = 0) -> None:
    """``psgd._orthogonalize`` accepting the 2-D matrix ``batched_powerSGD_hook`` passes (in place)."""
    _ORTHOGONALIZE(matrices.unsqueeze(0) if matrices.dim() == 2 else matrices, epsilon)


_ORTHOGONALIZE = psgd._orthogonalize


def batched_hook_patched(state, bucket):
    """``batched_powerSGD_hook`` with ``_orthogonalize`` taking its 2-D matrix, until its future
    (whose callbacks orthogonalize too) is done."""
    psgd._orthogonalize = _orthogonalize_2d
    try:
        future = psgd.batched_powerSGD_hook(state, bucket)
        future.wait()
        return future
    finally:
        psgd._orthogonalize = _ORTHOGONALIZE


def batched_hook_error(grads: list[torch.Tensor]) -> str | None:
    """The error ``batched_powerSGD_hook`` raises on its first compressed iteration, if any."""
    try:
        hook_case(psgd.batched_powerSGD_hook, grads[:2], rank=1)[0]()
    except Exception as error:  # noqa: BLE001 - reported, not handled
        where = error.__traceback__
        while where.tb_next is not None:
            where = where.tb_next
        code = where.tb_frame.f_code
        return (
            f"{type(error).__name__}{': ' + str(error) if str(error) else ''} "
            f"(in {code.co_name}, {Path(code.co_filename).name}:{where.tb_lineno})"
        )
    return None


def hook_compressed(shapes: list[torch.Size], rank: int) -> tuple[int, int]:
    """Tensors the per-layer hook compresses, and floats it sends per iteration (its own rule)."""
    count, floats = 0, 0
    for shape in shapes:
        n = shape[0]
        m = math.prod(shape[1:]) if len(shape) > 1 else 1
        ok, before, after = psgd._should_compress(n, m, min(n, m, rank), MIN_COMPRESSION_RATE)
        count += bool(ok)
        floats += after if ok else before
    return count, floats


# --------------------------------------------------------------------------------- LASER side
def laser_case(grads: list[torch.Tensor], rank: int, passes: int):
    compressor = LaserCompressor(
        rank=rank, min_compression_rate=float(MIN_COMPRESSION_RATE), factors_per_round=passes
    )
    compressor.setup([g.detach() for g in grads], num_clients=1)
    uses = compressor.server.channel_uses(0)

    def iteration() -> list[torch.Tensor]:
        blocks = compressor.encode(0, grads)  # one client: the noiseless mean is its blocks
        if passes == 2:
            if compressor.decode(blocks) is not None:
                raise RuntimeError("the first pass's decode returned a gradient")
            blocks = compressor.encode_pass(0, 1)
        out = compressor.decode(blocks)
        if out is None:
            raise RuntimeError("the last pass's decode returned None")
        return out

    return iteration, len(compressor.server.compressed), uses


# ------------------------------------------------------------------------------------- driver
def init_group() -> None:
    """A one-process gloo group (the hook needs one) on an in-memory store: no file, nothing to clean."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def main(argv=None) -> dict:
    def options(parser) -> None:
        parser.add_argument(
            "--models",
            default=None,
            metavar="A,B",
            help="only these of mnist1d_cnn, cifar_resnet18, gpt2_124m (default: all of the mode)",
        )
        parser.add_argument("--repeats", type=int, default=None, metavar="N", help="timed repeats per model")

    args = parse_args(__doc__.splitlines()[0], argv, extra=options)
    logging.getLogger("torch.distributed").setLevel(logging.WARNING)
    torch.manual_seed(0)
    if args.quick:
        plan = {"mnist1d_cnn": (2, 15), "cifar_resnet18": (1, 3)}  # model: (warm-up, repeats)
    else:
        plan = {"mnist1d_cnn": (5, 200), "cifar_resnet18": (3, 30), "gpt2_124m": (1, 6)}
    if args.models:
        plan = {name: plan.get(name, (1, 6)) for name in args.models.split(",")}
        for name in plan:
            model_shapes(name)  # an unknown name fails here, before any timing
    if args.repeats:
        plan = {name: (warmup, args.repeats) for name, (warmup, _) in plan.items()}

    init_group()
    try:
        # three bare allreduces of a small tensor on the one-process group (what the hook adds)
        probe = torch.zeros(1024)

        def allreduce_x3() -> None:
            for _ in range(3):
                dist.all_reduce(probe, async_op=True).get_future().wait()

        overhead = summarize(
            time_interleaved({"allreduce_x3": allreduce_x3}, repeats=50 if args.quick else 300, warmup=5)[
                "allreduce_x3"
            ]
        )

        batched_error = batched_hook_error(random_gradients([torch.Size((64, 64)), torch.Size((64,))]))
        batched = psgd.batched_powerSGD_hook if batched_error is None else batched_hook_patched

        rows, results = [], []
        for model, (warmup, repeats) in plan.items():
            shapes = model_shapes(model)
            grads = random_gradients(shapes)
            numel = sum(g.numel() for g in grads)
            for rank in RANKS:
                cases, setups = {}, {}
                cases["laser_2pass"], n2, uses2 = laser_case(grads, rank, passes=2)
                cases["laser_1pass"], n1, uses1 = laser_case(grads, rank, passes=1)
                cases["hook"], setups["hook"] = hook_case(psgd.powerSGD_hook, grads, rank)
                cases["hook_same_shape"], setups["hook_same_shape"] = hook_case(
                    psgd.powerSGD_hook, grads, rank, same_shape=True
                )
                cases["batched_hook"], setups["batched_hook"] = hook_case(batched, grads, rank)
                nh, floats_h = hook_compressed(shapes, rank)
                times = time_interleaved(cases, repeats=repeats, warmup=warmup, setups=setups)
                ms = {name: summarize(t) for name, t in times.items()}
                med = {name: s["median"] for name, s in ms.items()}
                result = {
                    "model": model,
                    "tensors": len(shapes),
                    "params": numel,
                    "rank": rank,
                    "repeats": repeats,
                    "warmup": warmup,
                    "compressed_tensors": {"laser_2pass": n2, "laser_1pass": n1, "hook": nh},
                    "floats_sent_per_iteration": {
                        "laser_2pass": uses2,
                        "laser_1pass": uses1,
                        "hook": floats_h,
                    },
                    "ms": med,
                    "ms_stats": ms,
                    "ratio_hook_over_laser_2pass": med["hook"] / med["laser_2pass"],
                    "ratio_hook_over_laser_1pass": med["hook"] / med["laser_1pass"],
                    "ratio_hook_same_shape_over_laser_2pass": med["hook_same_shape"] / med["laser_2pass"],
                }
                results.append(result)
                rows.append(
                    [
                        model,
                        rank,
                        f"{nh}/{n2}/{n1}",
                        med["laser_2pass"],
                        med["laser_1pass"],
                        med["hook"],
                        med["hook_same_shape"],
                        med["batched_hook"],
                        result["ratio_hook_over_laser_2pass"],
                        result["ratio_hook_over_laser_1pass"],
                        result["ratio_hook_same_shape_over_laser_2pass"],
                    ]
                )
                print(f"  {model} rank {rank}: done", file=sys.stderr, flush=True)
                del cases, setups
            del grads
    finally:
        dist.destroy_process_group()

    print_table(
        [
            "model",
            "rank",
            "compr. h/L2/L1",
            "LASER 2p ms",
            "LASER 1p ms",
            "hook ms",
            "hook same-shape ms",
            "batched hook ms",
            "hook/L2",
            "hook/L1",
            "hook same-shape/L2",
        ],
        rows,
        title="PowerSGD hook vs LASER: median ms per iteration (compress + decompress), "
        "ratio > 1: LASER faster",
    )
    if batched_error is not None:
        print(
            f"batched_powerSGD_hook fails as shipped: {batched_error}; its column times it with "
            "_orthogonalize given the matrix as a batch of one"
        )
    print(
        f"(hook times include 3 allreduces on a 1-process gloo group; 3 bare ones take "
        f"{overhead['median']:.3f} ms median)"
    )
    result = {
        "benchmark": "powersgd_hook",
        "quick": args.quick,
        "machine": machine_info("cpu"),
        "settings": {
            "ranks": list(RANKS),
            "min_compression_rate": MIN_COMPRESSION_RATE,
            "use_error_feedback": True,
            "warm_start": True,
            "orthogonalization_epsilon": 0,
            "start_powerSGD_iter": 2,
            "num_clients": 1,
            "dtype": "float32",
            "gradient_seed": 0,
            "buckets": 1,
        },
        "notes": [
            "ms = median ms per iteration (compress + decompress, one client / one process)",
            "hook times include three allreduces on a one-process gloo group; allreduce_x3_ms times three "
            "bare ones",
            "the bucket refill before each hook call is not timed; GradBucket has no Python constructor, so "
            "a Python object with the methods the hooks call stands in for it",
            "laser_2pass compresses the same tensors as the hook; laser_1pass counts one factor per round in "
            "its rule",
            "batched_hook is batched_powerSGD_hook (one square matrix for the whole bucket): a different "
            "algorithm",
            "ratio_* = hook median / LASER median: > 1 means LASER is faster",
        ],
        "allreduce_x3_ms": overhead,
        "batched_hook_error": batched_error,
        "batched_hook_patched": batched_error is not None,
        "results": results,
    }
    emit(result, args.json)
    return result


if __name__ == "__main__":
    main()
