"""``federated.adapters`` itself imports nothing: Flower and torch.distributed load only with the
adapter a user imports."""

import subprocess
import sys


def test_importing_the_package_loads_no_framework():
    code = "import sys, federated.adapters; print(sorted(m for m in ('flwr', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
