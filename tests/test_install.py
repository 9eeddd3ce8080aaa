"""A regular (non-editable) install, used outside the repository, as a newcomer would: the wheel
carries the configs, and every config the README names resolves from a directory with no
``configs/`` in it; a README command runs as written (shortened by ``rounds=1``)."""

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment: about a minute

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _readme_configs() -> set[str]:
    """The config arguments of the README's ``laser run`` / ``laser sweep`` commands."""
    found = set()
    for line in README.splitlines():
        if re.match(r"\s*laser (run|sweep) ", line):
            found.update(re.findall(r"(configs/[\w/{},.-]+\.yaml)", line.split("#")[0]))
    expanded = set()
    for name in found:  # configs/mnist1d_{laser,zsgd}.yaml: shell braces
        match = re.search(r"\{([^}]*)\}", name)
        alternatives = match.group(1).split(",") if match else [""]
        expanded.update(name.replace(match.group(0), a) if match else name for a in alternatives)
    return expanded


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment holding only the wheel built from this checkout (its
    dependencies borrowed from the test environment through a .pth file, so nothing is downloaded
    and this checkout is not on the path)."""
    root = tmp_path_factory.mktemp("install")
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources
    source = root / "source"
    top = {".git", ".venv", "build", "data", "runs", "site"}  # at the root only: federated/data is code

    def heavy(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return skip | (top & set(names) if Path(directory) == REPO else set())

    shutil.copytree(REPO, source, symlinks=True, ignore=heavy)
    wheels = root / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            source,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("laser_ota-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the test environment's packages, without its .pth files (the editable install of this checkout)
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel],
        check=True,
        timeout=300,
    )
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin", elsewhere


def _clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, which could put a checkout before the installed package."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _laser(installed, *args: str) -> subprocess.CompletedProcess:
    bin_dir, cwd = installed
    command = [bin_dir / "laser", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=_clean_env())


def test_the_installed_package_is_not_this_checkout(installed):
    bin_dir, cwd = installed
    where = subprocess.run(
        [bin_dir / "python", "-c", "import federated; print(federated.__file__)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    ).stdout
    assert str(REPO) not in where and "site-packages" in where


def test_every_config_the_readme_names_ships_with_the_wheel(installed):
    names = _readme_configs()
    assert len(names) >= 6, names  # the README's runs, sweeps and paper configs
    listing = _laser(installed, "configs")
    assert listing.returncode == 0, listing.stderr
    for name in names:
        shipped = name.removeprefix("configs/").removesuffix(".yaml")
        assert re.search(rf"^{re.escape(shipped)}\s", listing.stdout, re.M), (name, listing.stdout)


@pytest.mark.parametrize(
    "command",
    [
        ["run", "configs/mnist1d_laser.yaml", "--out", "runs/laser"],  # as the README writes it
        ["run", "mnist1d_zsgd", "--out", "runs/zsgd"],  # by name
        ["sweep", "configs/mnist1d_noiseless.yaml", "--grid", "seed=0,1", "--out", "runs/energy"],
    ],
)
def test_readme_commands_run_outside_the_repository(installed, command):
    result = _laser(installed, *command, "rounds=1", "eval_every=1", "--quiet")
    assert result.returncode == 0, result.stderr


def test_a_missing_config_says_where_configs_are_looked_for(installed):
    result = _laser(installed, "run", "configs/no_such_config.yaml")
    assert result.returncode == 2
    assert (
        "looked in" in result.stderr and "site-packages" in result.stderr and "laser configs" in result.stderr
    )
