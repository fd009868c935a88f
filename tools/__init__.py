"""Repository tooling run by make targets (e.g. `make k8s-check`): not a library, never installed.

Run from the repository root as `python -m tools.<name>`; nothing under libs/ or services/
imports it.
"""
