"""Backing services for `make dev` and the tests: embedded Postgres, local S3, service processes."""
