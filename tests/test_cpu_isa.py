"""The AVX2 pin of :mod:`federated.reproducible`: ``laser run`` applies it before torch starts (so it
holds whatever the environment says), records it, and turns it off on request; it sets nothing where
it cannot hold (a CPU without AVX2, ARM, torch's kernels already chosen) and says why; ``train``
warns where it was asked for and did not hold; the kernel fingerprint tells other kernels apart."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from federated import reproducible
from federated.config import config_to_dict, load_config, same_config
from federated.history import format_summary
from federated.reproducible import PIN, kernel_fingerprint, pin_cpu_isa, pin_state, supported_capabilities

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.name=digits", "model.name=linear", "clients.num_clients=2", "rounds=1"]
needs_avx2 = pytest.mark.skipif(
    not reproducible.cpu_supports_pin()[0], reason=reproducible.cpu_supports_pin()[1]
)


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without the pin's variables and $LASER_CPU_ISA (a run in this
    process may have pinned it), with this checkout's packages first on the path (the processes run
    elsewhere), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PIN and k != reproducible.CPU_ISA_ENV}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])), **extra}


def _python(code: str, **env: str) -> str:
    """``code`` run in a fresh Python process from the repository root; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _laser(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "federated.cli", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_avx2
def test_laser_run_pins_before_torch_starts_and_records_it(tmp_path):
    """ATEN_CPU_CAPABILITY=default in the environment: ``laser run`` still runs AVX2 (the pin came
    before torch's first kernel) and says so in summary.json; config.yaml keeps the key."""
    data = f"data.root={tmp_path / 'data'}"
    result = _laser(
        "run", *TINY, data, "-qq", "--out", str(tmp_path / "r"), cwd=tmp_path, ATEN_CPU_CAPABILITY="default"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["cpu_isa"] == "avx2: pinned (AVX2)"
    assert summary["environment"]["capability"] == "AVX2"
    assert summary["environment"]["variables"] == PIN
    assert len(summary["environment"]["kernel_fingerprint"]) == 16
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["cpu_isa"] == "avx2"


@pytest.mark.slow
@needs_avx2
@pytest.mark.parametrize(
    "how, env", [(["cpu_isa=native"], {}), ([], {"LASER_CPU_ISA": "native"})], ids=["key", "env"]
)
def test_native_leaves_the_environment_to_decide(tmp_path, how, env):
    """``cpu_isa=native`` or ``$LASER_CPU_ISA=native``: the environment's ATEN_CPU_CAPABILITY=default
    rules, and summary.json says what ran."""
    data = f"data.root={tmp_path / 'data'}"
    out = tmp_path / "r"
    result = _laser(
        "run", *TINY, *how, data, "-qq", "--out", str(out), cwd=tmp_path, ATEN_CPU_CAPABILITY="default", **env
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cpu_isa"] == "native (DEFAULT)" and summary["environment"]["capability"] == "DEFAULT"


@pytest.mark.slow
@needs_avx2
def test_the_points_of_a_sweep_pin_themselves(tmp_path):
    data = f"data.root={tmp_path / 'data'}"
    sweep = ["sweep", str(ROOT / "configs" / "digits_laser.yaml"), *TINY, data, "--grid", "seed=0", "--quiet"]
    result = _laser(*sweep, "--out", str(tmp_path / "s"), cwd=tmp_path, ATEN_CPU_CAPABILITY="default")
    assert result.returncode == 0, result.stdout + result.stderr
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "s").rglob("summary.json")]
    assert summary["cpu_isa"] == "avx2: pinned (AVX2)"


@pytest.mark.parametrize(
    "command", [["run", *TINY], ["sweep", str(ROOT / "configs" / "digits_laser.yaml"), "--grid", "seed=0"]]
)
def test_a_bad_laser_cpu_isa_is_refused_in_one_line(tmp_path, command):
    result = _laser(*command, "--out", str(tmp_path / "r"), cwd=tmp_path, LASER_CPU_ISA="avx512")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"laser {command[0]}: config error: LASER_CPU_ISA = 'avx512' is not accepted; expected avx2 or "
        "native (it overrides the config key cpu_isa)"
    ]


@needs_avx2
def test_the_pin_holds_after_importing_torch_and_not_after_its_first_kernel():
    """torch fixes its capability at its first kernel: a pin before holds, a pin after says so and
    leaves the environment as it was."""
    before = _python(
        "import torch\nfrom federated.reproducible import pin_cpu_isa\nr = pin_cpu_isa()\n"
        "print(r.holds, torch.backends.cpu.get_cpu_capability())",
        ATEN_CPU_CAPABILITY="default",
    )
    assert before.split() == ["True", "AVX2"]
    after = _python(
        "import os, torch\nfrom federated.reproducible import pin_cpu_isa\ntorch.ones(3).sum()\n"
        "r = pin_cpu_isa()\n"
        "print(r.holds, os.environ['ATEN_CPU_CAPABILITY'], 'ONEDNN_MAX_CPU_ISA' in os.environ)\n"
        "print(r.reason)",
        ATEN_CPU_CAPABILITY="default",
    )
    first, reason = after.splitlines()
    assert first.split() == ["False", "default", "False"]
    assert "already chosen its DEFAULT kernels" in reason


@needs_avx2
def test_train_warns_once_where_the_pin_did_not_hold():
    """A library user who ran a tensor operation under ATEN_CPU_CAPABILITY=default before train(): one
    warning (not one per run), pointing at the caller's line, and the summary says what ran."""
    out = _python(
        "import json, warnings, torch\ntorch.ones(3).sum()\n"
        "from federated.config import load_config\nfrom federated.train import train\n"
        f"config = load_config(None, {TINY!r})\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    history = train(config, progress=False)\n"
        "    train(config, progress=False)\n"
        "mine = [w for w in caught if 'cpu_isa' in str(w.message)]\n"
        "print(json.dumps([len(mine), mine[0].filename, str(mine[0].message), history.summary['cpu_isa']]))",
        ATEN_CPU_CAPABILITY="default",
    )
    count, filename, message, recorded = json.loads(out)
    assert count == 1 and filename == "<string>"
    assert "pin_cpu_isa()" in message and "cpu_isa: native" in message
    assert recorded == "avx2: NOT pinned, torch runs DEFAULT"


def test_a_cpu_without_avx2_or_an_arm_cpu_is_left_alone(monkeypatch):
    """Where the pin cannot hold, it sets nothing (torch would crash on kernels the CPU lacks, and on
    ARM there are none) and says why; the capabilities CI loops over follow the CPU's features."""
    for name in (*PIN, reproducible.CPU_ISA_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(reproducible, "_cpu_features", lambda: frozenset({"SSE2", "SSE41", "AVX"}))
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "x86_64")
    result = pin_cpu_isa()
    assert not result.holds and "no AVX2 and FMA" in result.reason
    assert not any(name in os.environ for name in PIN)
    assert pin_state("avx2")[0] is None and supported_capabilities() == ["default"]
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "aarch64")
    result = pin_cpu_isa()
    assert not result.holds and "not an x86 CPU (aarch64)" in result.reason
    assert not any(name in os.environ for name in PIN)
    monkeypatch.setattr(reproducible.platform, "machine", lambda: "x86_64")
    avx512 = {"AVX2", "FMA3", "AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ"}
    monkeypatch.setattr(reproducible, "_cpu_features", lambda: frozenset(avx512))
    assert supported_capabilities() == ["default", "avx2", "avx512"]


@needs_avx2
def test_the_kernel_fingerprint_tells_another_capability_apart():
    code = (
        "from federated.reproducible import pin_cpu_isa, kernel_fingerprint\n"
        "pin_cpu_isa('{}')\nprint(kernel_fingerprint())"
    )
    pinned = _python(code.format("avx2"), ATEN_CPU_CAPABILITY="default")
    assert pinned == _python(code.format("avx2"))
    assert pinned != _python(code.format("native"), ATEN_CPU_CAPABILITY="default")


def test_the_kernel_fingerprint_leaves_the_generator_and_threads_alone():
    import torch

    threads, state = torch.get_num_threads(), torch.get_rng_state()
    assert kernel_fingerprint() == kernel_fingerprint()
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)


def test_a_config_written_before_the_key_loads_and_resumes_as_avx2(tmp_path):
    stored = config_to_dict(load_config(None, TINY))
    del stored["cpu_isa"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    assert load_config(tmp_path / "config.yaml").cpu_isa == "avx2"
    assert same_config(stored, load_config(None, TINY))  # a checkpoint of that run resumes


def test_the_results_table_shows_the_pin_and_not_the_environment_record():
    table = format_summary({"rounds": 1, "cpu_isa": "avx2: pinned (AVX2)", "environment": {"torch": "x"}})
    assert "avx2: pinned (AVX2)" in table and "environment" not in table
