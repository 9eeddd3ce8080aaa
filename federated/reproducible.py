"""The same numbers on every x86 CPU: pin torch's and oneDNN's instruction set to AVX2.

torch's vectorised CPU kernels (exp, sums, norms, the random generators' transforms) and oneDNN's
convolutions pick their instruction set from the CPU they run on: AVX2 on most x86 CPUs, AVX-512
where the CPU has it. The two give float results that differ in the last bits (another order of
summation, another polynomial), and a noisy training run amplifies such a difference over hundreds
of rounds into points of accuracy. :func:`pin_cpu_isa` caps both at AVX2, the widest level most x86
CPUs share, by setting ``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2`` and
``MKL_ENABLE_INSTRUCTIONS=AVX2`` (MKL's own ISA cap, which keeps it on its AVX2 kernels on Intel
CPUs with AVX-512); torch and oneDNN read them once, at their first kernel, so the pin must come
before the first tensor operation of the process. ``laser run`` applies it itself before importing
torch, from the run's ``cpu_isa`` key (``avx2``, the default, or ``native``: the CPU's widest);
the environment variable ``LASER_CPU_ISA`` overrides that key (for CI and scripts). A library user
calls it first thing::

    from federated.reproducible import pin_cpu_isa
    pin_cpu_isa()      # before the first tensor operation of the process
    import torch       # ... and then anything

The pin holds only on x86 CPUs with AVX2 and FMA: an older x86 CPU has no AVX2 kernels to run (torch
takes its DEFAULT ones), and an ARM CPU has other kernels altogether (NEON, SVE); there the pin does
nothing and says why, and the results agree with an AVX2 machine's to the last digits only.
``MKL_CBWR`` (MKL's conditional numerical reproducibility) is deliberately not part of the pin: it
moves every number (other kernels than MKL's default ones), and on non-Intel CPUs it takes another
branch than on Intel ones.

:func:`environment` records the machine beside a result (torch, CPU, torch's capability, the pin's
variables, :func:`kernel_fingerprint`); the fingerprint, a short hash of the outputs of the kernels
the runs use, tells whether two machines compute alike, so whether a re-run should match exactly.
This module imports no torch at import time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CPU_ISA_SETTINGS",
    "CPU_ISA_ENV",
    "PIN",
    "PinResult",
    "resolve_cpu_isa",
    "pin_cpu_isa",
    "pin_state",
    "cpu_supports_pin",
    "supported_capabilities",
    "cpu_model",
    "kernel_fingerprint",
    "environment",
]

CPU_ISA_SETTINGS = ("avx2", "native")  # the config key cpu_isa's values
CPU_ISA_ENV = "LASER_CPU_ISA"  # overrides the config key cpu_isa where it is set
# the variables the pin sets, and their values; read by torch (ATen), oneDNN and MKL at first use
PIN = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
_X86 = ("x86_64", "amd64", "x86", "i386", "i686")


@dataclass(frozen=True)
class PinResult:
    """What :func:`pin_cpu_isa` did: the ``setting`` it was given, whether the pin now ``holds``
    (torch and oneDNN run AVX2 in this process), and ``reason``, a sentence saying why or why not."""

    setting: str
    holds: bool
    reason: str


def _cpu_features() -> frozenset[str]:
    """The CPU's instruction-set extensions, in numpy's names (AVX2, FMA3, AVX512F...), as numpy's
    run-time detection sees them (cpuid and the OS's register support); /proc/cpuinfo otherwise."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # type: ignore[no-redef]
        except ImportError:
            features = {}
    if features:
        return frozenset(name for name, present in features.items() if present)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return frozenset("FMA3" if f == "fma" else f.upper() for f in flags)


def _is_x86() -> bool:
    return platform.machine().lower() in _X86


def cpu_supports_pin() -> tuple[bool, str]:
    """Whether this CPU can run the AVX2 pin (an x86 CPU with AVX2 and FMA), and if not, why."""
    if not _is_x86():
        return False, (
            f"not an x86 CPU ({platform.machine()}): torch's kernels there (NEON, SVE) have no AVX2 "
            "level; results agree with an AVX2 machine's to the last digits only"
        )
    features = _cpu_features()
    if not {"AVX2", "FMA3"} <= features:
        return False, (
            "this x86 CPU has no AVX2 and FMA: torch runs its DEFAULT kernels, whose results agree with "
            "an AVX2 machine's to the last digits only"
        )
    return True, "an x86 CPU with AVX2 and FMA"


def supported_capabilities() -> list[str]:
    """The values of ``ATEN_CPU_CAPABILITY`` this CPU can run (torch does not check: a value the CPU
    lacks crashes at the first kernel): ``default``, then ``avx2`` and ``avx512`` where present."""
    if not _is_x86():
        return ["default"]
    features = _cpu_features()
    found = ["default"]
    if {"AVX2", "FMA3"} <= features:
        found.append("avx2")
        if {"AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ"} <= features:
            found.append("avx512")
    return found


def resolve_cpu_isa(setting: str) -> str:
    """The setting that applies: ``$LASER_CPU_ISA`` where it is set, else ``setting`` (the run's
    ``cpu_isa`` key). A value other than avx2 or native raises :class:`~federated.config.ConfigError`."""
    from federated.config.errors import ConfigError

    override = os.environ.get(CPU_ISA_ENV)
    if override:
        if override not in CPU_ISA_SETTINGS:
            raise ConfigError(CPU_ISA_ENV, override, "avx2 or native (it overrides the config key cpu_isa)")
        return override
    if setting not in CPU_ISA_SETTINGS:
        raise ConfigError("cpu_isa", setting, "avx2 or native")
    return setting


def _torch_capability() -> str | None:
    """torch's CPU capability in this process (AVX2, AVX512, DEFAULT...), None if torch is not
    imported. The first call fixes it for the process, as torch's first kernel does."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return str(torch.backends.cpu.get_cpu_capability())


def pin_cpu_isa(setting: str = "avx2") -> PinResult:
    """Apply ``setting`` (``avx2``: the pin; ``native``: nothing) to this process and to the
    processes it starts, which inherit its environment; ``$LASER_CPU_ISA`` overrides ``setting``.

    Call it before the first tensor operation of the process: torch fixes its capability at its
    first kernel (or at :func:`torch.backends.cpu.get_cpu_capability`), oneDNN at its first
    convolution. Importing torch before is fine; operating on tensors is not, and a pin that came too
    late says so in the result (the ATen part; oneDNN's cannot be queried) and changes nothing. On a
    CPU without AVX2 and FMA, or not an x86 one, it sets nothing and says why. The pin replaces values
    of its variables already in the environment. Idempotent.

    >>> pin_cpu_isa("native").holds
    False
    """
    setting = resolve_cpu_isa(setting)
    if setting == "native":
        return PinResult(
            setting,
            False,
            "cpu_isa native: torch and oneDNN choose by the CPU (its widest instruction set, unless the "
            "environment sets their variables)",
        )
    ok, why = cpu_supports_pin()
    if not ok:
        return PinResult(setting, False, f"not pinned: {why}")
    before = {name: os.environ.get(name) for name in PIN}
    replaced = [f"{k}={v}" for k, v in before.items() if v is not None and v != PIN[k]]
    os.environ.update(PIN)
    capability = _torch_capability()
    if capability is not None and capability != "AVX2":  # too late: leave the environment as it was
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        return PinResult(
            setting,
            False,
            f"not pinned: torch had already chosen its {capability} kernels (pin_cpu_isa() must come "
            "before the first tensor operation of the process)",
        )
    note = f" (replacing {', '.join(replaced)})" if replaced else ""
    return PinResult(setting, True, f"pinned to AVX2{note}")


def pin_state(setting: str) -> tuple[bool | None, str]:
    """Whether this process runs as ``setting`` asks, as far as can be told after the fact: True (the
    pin holds), False (it was asked for on a CPU that has AVX2 but does not hold: torch's capability
    is another, or oneDNN is not capped on a CPU with AVX-512) or None (nothing to hold: ``native``,
    or a CPU without AVX2). The second item says it in a few words, e.g. ``avx2: pinned (AVX2)``."""
    capability = _torch_capability() or "torch not imported"
    if setting == "native":
        return None, f"native ({capability})"
    ok, why = cpu_supports_pin()
    if not ok:
        return None, f"avx2: not applicable, {why.split(':')[0]} ({capability})"
    unpinned_dnn = os.environ.get("ONEDNN_MAX_CPU_ISA") != PIN["ONEDNN_MAX_CPU_ISA"] and "AVX512F" in (
        _cpu_features()
    )
    if capability != "AVX2" or unpinned_dnn:
        what = f"torch runs {capability}" if capability != "AVX2" else "oneDNN is not capped (AVX-512 CPU)"
        return False, f"avx2: NOT pinned, {what}"
    return True, "avx2: pinned (AVX2)"


@cache
def cpu_model() -> str:
    """The CPU's model name, with its vendor, family and model numbers where the OS gives them
    (virtual machines often show a generic name: the numbers tell the generations apart)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Model") or platform.processor() or platform.machine()
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    if "vendor_id" in fields:
        numbers.insert(0, fields["vendor_id"])
    if "CPU implementer" in fields:  # ARM
        numbers = [f"{k} {fields[k]}" for k in ("CPU implementer", "CPU part") if k in fields]
    return f"{name} ({', '.join(numbers)})" if numbers else name


def kernel_fingerprint() -> str:
    """A short hash (16 hex digits) of the outputs of the CPU kernels the runs use, computed in this
    process: the random generators (normal, uniform, integers, permutations, complex normal), float32
    matrix products of several shapes (GEMM, GEMV, batched; MKL's), conv1d forward and backward,
    grouped too (oneDNN's; the vmapped clients'), exp, log, tanh, sqrt, cumsum, softmax and
    cross-entropy, sums and vector norms (float32 and float64), complex products and magnitudes, a
    QR factorisation (LAPACK's). Two processes with the same fingerprint compute these alike, bit for
    bit; another CPU generation, capability (pin) or torch build usually gives another one.

    It runs on one thread (restored afterwards), with its own generators (the global one is not
    touched), in a few milliseconds once torch is imported. It fixes torch's capability like any
    tensor operation: call :func:`pin_cpu_isa` first."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outputs = _kernel_outputs(torch, F)
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256()
    for out in outputs:
        out = out.detach().cpu().contiguous()
        if out.is_complex():
            out = torch.view_as_real(out)
        digest.update(str(out.dtype).encode())
        digest.update(out.numpy().tobytes())
    return digest.hexdigest()[:16]


def _kernel_outputs(torch: Any, F: Any) -> list[Any]:
    g = torch.Generator().manual_seed(20240611)
    randn = torch.randn(4099, generator=g)
    outputs = [
        randn,
        torch.rand(1031, generator=g),
        torch.randint(0, 10_000, (257,), generator=g),
        torch.randperm(1000, generator=g),
        torch.randn(515, dtype=torch.complex64, generator=g),
        torch.empty(1027, dtype=torch.float64).normal_(0.5, 2.0, generator=g),
        torch.empty(333).uniform_(-1, 1, generator=g),
    ]
    for m, k, n in [(64, 300, 33), (7, 1, 9), (1, 517, 1), (100, 8, 4), (33, 1000, 10), (16, 192, 64)]:
        a = torch.randn(m, k, generator=g)
        b = torch.randn(k, n, generator=g)
        outputs += [a @ b, a.T.contiguous().T @ b, b.T @ a.T]
    outputs.append(torch.randn(5, 17, 31, generator=g) @ torch.randn(5, 31, 6, generator=g))
    outputs.append(torch.randn(96, 300, generator=g) @ torch.randn(300, generator=g))  # GEMV
    a64 = torch.randn(40, 70, dtype=torch.float64, generator=g)
    outputs.append(a64 @ a64.T)
    # the MNIST-1D network's convolutions, forward and backward, and a grouped one (vmapped clients)
    x = torch.randn(8, 1, 40, generator=g, requires_grad=True)
    w1 = torch.randn(16, 1, 5, generator=g, requires_grad=True)
    w2 = torch.randn(16, 16, 3, generator=g, requires_grad=True)
    wg = torch.randn(32, 8, 3, generator=g, requires_grad=True)
    h = F.relu(F.conv1d(x, w1, stride=2, padding=1))
    h = F.conv1d(h, w2, stride=2, padding=1)
    hg = F.conv1d(h.reshape(4, 32, -1), wg, stride=2, padding=1, groups=4)
    logits = hg.flatten(1) @ torch.randn(hg[0].numel(), 10, generator=g)
    loss = F.cross_entropy(logits, torch.arange(4) % 10)
    outputs += [h, hg, logits, loss, *torch.autograd.grad(loss, [x, w1, w2, wg])]
    v = torch.randn(28_298, generator=g)
    z = torch.randn(700, dtype=torch.complex64, generator=g)
    outputs += [
        v.exp(),
        v.abs().log(),
        v.tanh(),
        v.abs().sqrt(),
        v.cumsum(0),
        v.softmax(0),
        F.log_softmax(v[:28_000].reshape(-1, 7), 1),
        v.sum(),
        v.mean(),
        (v * v).sum(),
        torch.linalg.vector_norm(v),
        torch.linalg.vector_norm(v.double()),
        v.double().sum(),
        v[:28_000].reshape(-1, 14).norm(dim=1),
        z * z.conj(),
        z.abs(),
        (z * torch.randn(700, generator=g)).sum(),
        torch.linalg.qr(torch.randn(192, 4, generator=g), mode="reduced").Q,
    ]
    return outputs


def environment(setting: str | None = None) -> dict[str, Any]:
    """The machine behind a result, as a JSON-able dict: torch's version, the CPU (model, architecture),
    torch's CPU capability in this process, the pin's variables as the environment has them, and
    :func:`kernel_fingerprint`. With ``setting`` (a run's ``cpu_isa``) also ``cpu_isa``: whether the
    pin holds, in a few words (:func:`pin_state`). Imports torch (fixing its capability: call
    :func:`pin_cpu_isa` first); a few milliseconds once torch is imported."""
    import torch

    record: dict[str, Any] = {}
    if setting is not None:
        record["cpu_isa"] = pin_state(setting)[1]
    record.update(
        {
            "torch": torch.__version__,
            "capability": str(torch.backends.cpu.get_cpu_capability()),
            "kernel_fingerprint": kernel_fingerprint(),
            "cpu": cpu_model(),
            "machine": platform.machine(),
            "supported_capabilities": supported_capabilities(),
            "variables": {name: os.environ.get(name) for name in PIN},
        }
    )
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m federated.reproducible [--capabilities] [--native]``: this machine's record as
    JSON, under the pin unless ``--native`` (``--capabilities``: the ATEN_CPU_CAPABILITY values this
    CPU runs, one a line, without importing torch: what CI loops over)."""
    import json

    argv = sys.argv[1:] if argv is None else argv
    if "--capabilities" in argv:
        print("\n".join(supported_capabilities()))
        return 0
    setting = "native" if "--native" in argv else "avx2"
    result = pin_cpu_isa(setting)
    print(json.dumps({"pin": result.reason, **environment(result.setting)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
