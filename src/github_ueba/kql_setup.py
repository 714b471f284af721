"""Installs duckdb-kql with its own antlr4 runtime into a private folder (see docs/architecture.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: duckdb-kql pins antlr4 4.13.2; hydra-core pins 4.9, so these live apart from the main environment.
KQL_REQUIREMENTS = ["duckdb-kql==1.1.2", "antlr4-python3-runtime==4.13.2", "pytz>=2024.1"]


def kql_lib_dir() -> Path:
    """The private folder holding duckdb-kql: env GITHUB_UEBA_KQL_LIB, else `<sys.prefix>/kql-lib`."""
    return Path(os.environ.get("GITHUB_UEBA_KQL_LIB") or Path(sys.prefix) / "kql-lib")


def install_kql_lib(target: Path | None = None) -> Path:
    """pip-install duckdb-kql and antlr4 4.13.2 (no other dependencies) into `target`."""
    target = target or kql_lib_dir()
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", str(target),
           *KQL_REQUIREMENTS]
    subprocess.run(cmd, check=True)
    return target
