"""`python -m tools.k8s_check [--root DIR]` (what `make k8s-check` runs)."""

from tools.k8s_check.cli import main

raise SystemExit(main())
