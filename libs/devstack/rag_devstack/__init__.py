"""Backing services for development and tests: embedded Postgres, local S3, fixtures."""
