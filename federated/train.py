"""The round loop: clients compute gradients, compress, transmit over the air; the server decodes,
steps and broadcasts (DESIGN.md section 3)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from channels import FadingChannel
from laser import Compressor
from federated.components import build_channel, build_compressor, client_budget_scales, split_seed
from federated.config import Config, ConfigError, config_to_dict
from federated.data import ClientBatches, Dataset, iid_split, load_dataset
from federated.history import History, RunDirectory
from federated.models import build_model
from federated.downlink import NoisyDownlink
from federated.uplink import UplinkResult, digital_uplink, uplink

__all__ = ["train", "evaluate", "NonFiniteError", "resolve_device"]


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient; the history so far is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is not available here; use auto or cpu")
    return device


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train()
    return loss / len(y), correct / len(y)


def check_fits(config: Config, data: Dataset) -> None:
    """Cross-checks that need the data: every client gets a sample, the test set is not empty."""
    if len(data.y_train) < config.clients.num_clients:
        raise ConfigError("clients.num_clients", config.clients.num_clients,
                          f"at most the {len(data.y_train)} training samples of {config.data.name}")
    if len(data.y_test) == 0:
        raise ConfigError("data.test_fraction", config.data.test_fraction,
                          f"a fraction that leaves at least one test sample of {config.data.name}")


def _check_finite(name: str, value: Tensor, round_: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"round {round_}: the {name} is not finite (NaN or inf); the run stopped "
                             "here (a very noisy channel, i.e. a low power.energy, or a large optimizer.lr can "
                             "make training diverge)")


def transmit(compressor: Compressor, channel: FadingChannel, client_blocks: list[list[Tensor]],
             config: Config, budget_scale: Tensor | None) -> tuple[list[Tensor], list[UplinkResult]]:
    """One round's communication: every channel pass of ``compressor`` through ``channel`` and the
    server's decoding. Returns the gradient estimate and what each pass received.

    An analog compressor's blocks go over the air (:func:`federated.uplink.uplink`), pass by pass,
    each pass with its share of the energy budget and its own channel state; a digital one's
    messages go on orthogonal links (:func:`federated.uplink.digital_uplink`).
    """
    power = config.power
    if not compressor.analog:
        bits = [compressor.message_bits(k) for k in range(len(client_blocks))]
        received = digital_uplink(channel, client_blocks, bits, energy=power.energy, snr_db=power.snr_db,
                                  budget_scale=budget_scale)
        for k in (~received.active).nonzero().flatten().tolist():
            compressor.undelivered(k, client_blocks[k])
        return compressor.decode(received.estimates, received.noise_var), [received]
    results, shares, g_hat = [], compressor.pass_shares(), None
    for p in range(compressor.passes):
        if p > 0:
            client_blocks = [compressor.encode_pass(k, p) for k in range(len(client_blocks))]
        energy = None if power.energy is None else power.energy * shares[p]
        received = uplink(channel, client_blocks, energy=energy, snr_db=power.snr_db,
                          allocation=power.allocation, budget_scale=budget_scale,
                          groups=compressor.energy_groups())
        results.append(received)
        g_hat = compressor.decode(received.estimates, received.noise_var)
    if g_hat is None:
        raise RuntimeError(f"{type(compressor).__name__}.decode returned None after its last pass")
    return g_hat, results


def channel_record(passes: list[UplinkResult]) -> dict[str, object]:
    """The per-round channel log (DESIGN.md section 4) over all passes of a round."""
    energy = torch.stack([r.energy_used.double().cpu() for r in passes]).sum(0)
    uses = sum(r.channel_uses for r in passes)
    noise_energy = sum(r.noise_energy for r in passes)
    record = {
        "energy_max": float(energy.max()),
        "energy_mean": float(energy.mean()),
        "channel_uses": uses,
        "noise_var_mean": noise_energy / uses if uses else 0.0,
        "noise_var": [float(v) for r in passes for v in r.noise_var],
        "active_clients": int(torch.stack([r.active.cpu() for r in passes]).any(0).sum()),
    }
    if passes[0].bits is not None:
        record["bits_mean"] = float(passes[0].bits.mean())
    return record


def train(
    config: Config,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    dataset: Dataset | None = None,
) -> History:
    """Run one federated training job as ``config`` says; return its history.

    With ``out_dir`` the run directory (config, per-round history, summary) is written as it goes.

    Example:
        >>> from federated.config import load_config
        >>> cfg = load_config(None, ["data.name=digits", "model.name=linear", "rounds=3",
        ...                          "clients.num_clients=4"])
        >>> history = train(cfg, progress=False)
        >>> len(history.rounds), 0.0 <= history.summary["test_accuracy"] <= 1.0
        (3, True)
    """
    device = resolve_device(config.device)
    streams = split_seed(config.seed)
    data = dataset if dataset is not None else load_dataset(config.data)
    check_fits(config, data)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    model = build_model(config.model.name, data.num_features, data.num_classes, config.model.width,
                        seed=streams.model).to(device)
    params = list(model.parameters())
    num_clients = config.clients.num_clients
    data_generator = torch.Generator().manual_seed(streams.data)
    batches = ClientBatches(iid_split(len(y_train), num_clients, data_generator),
                            config.clients.batch_size, data_generator)
    compressor = build_compressor(config.compressor, seed=streams.compressor)
    try:
        compressor.setup([p.detach() for p in params], num_clients)
    except ValueError as error:              # the method does not fit this model (A-DSGD's projection)
        raise ConfigError("compressor.fraction", config.compressor.fraction,
                          f"a setting {config.compressor.name} can run with on this model ({error})") from None
    channel = build_channel(config.channel, streams.channel, device)
    budget_scale = None
    if config.power.spread_db > 0:
        budget_scale = client_budget_scales(config.power.spread_db, num_clients, streams.budgets)
    downlink = None
    if config.downlink.snr_db is not None:
        downlink = NoisyDownlink(config.downlink.snr_db, streams.downlink, device)
    opt = config.optimizer
    optimizer = torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                                weight_decay=opt.weight_decay, nesterov=opt.nesterov)

    history = History()
    run = RunDirectory(out_dir, config_to_dict(config)) if out_dir is not None else None
    started = time.perf_counter()
    bar = tqdm(range(config.rounds), desc="rounds", disable=not progress, dynamic_ncols=True)
    try:
        for t in bar:
            # --- clients: local gradient at the broadcast model, then encode (updates EF memory)
            client_blocks, losses = [], []
            for k in range(num_clients):
                idx = batches.next(k).to(device)
                if downlink is None:
                    loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                    grads = torch.autograd.grad(loss, params)
                else:                                   # client k trains on its own noisy copy
                    loss, grads = downlink.client_gradient(model, x_train[idx], y_train[idx])
                client_blocks.append(compressor.encode(k, grads))
                losses.append(loss.detach())
            train_loss = torch.stack(losses).mean()
            _check_finite("training loss", train_loss, t)

            # --- uplink (energy split across blocks, over-the-air mean of each block), server decodes
            g_hat, passes = transmit(compressor, channel, client_blocks, config, budget_scale)
            # --- server: step (momentum and weight decay on the decoded gradient), broadcast; a
            # float64 sum is finite iff every entry is (float32 gradients cannot overflow it), and
            # it needs no copy of the model-sized gradient
            _check_finite("decoded gradient", torch.stack([g.sum(dtype=torch.float64) for g in g_hat]).sum(), t)
            for p, g in zip(params, g_hat):
                p.grad = g.to(p.dtype)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            record = {"round": t, "train_loss": float(train_loss), **channel_record(passes)}
            if (t + 1) % config.eval_every == 0 or t + 1 == config.rounds:
                record["test_loss"], record["test_accuracy"] = evaluate(model, x_test, y_test)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['test_accuracy']:.3f}")
            history.rounds.append(record)
            if run is not None:
                run.append(record)
    except NonFiniteError as error:
        history.summarize(status="failed", error=str(error), wall_time_s=time.perf_counter() - started)
        if run is not None:
            run.finish(history.summary)
        raise
    finally:
        bar.close()
    history.summarize(status="finished", wall_time_s=round(time.perf_counter() - started, 3))
    if run is not None:
        run.finish(history.summary)
    return history
