"""The package as an integrator installs it: its version, and nothing of the server in it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import rag_engine_client


def test_the_version_is_exported_and_matches_the_metadata() -> None:
    assert rag_engine_client.__version__ == "0.1.0"
    assert importlib.metadata.version("rag-engine-client") == rag_engine_client.__version__


def test_it_declares_only_httpx_and_websockets() -> None:
    requires = importlib.metadata.requires("rag-engine-client") or []
    assert sorted(r.split(">")[0].split("=")[0].strip() for r in requires) == ["httpx", "websockets"]


def test_importing_it_loads_no_server_package() -> None:
    probe = "import sys, rag_engine_client; print(sorted(m for m in sys.modules if m.startswith('rag_')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip().startswith("[") and "rag_core" not in loaded and "rag_testing" not in loaded
    assert all(name.startswith("'rag_engine_client") for name in loaded.strip()[1:-1].split(", "))
