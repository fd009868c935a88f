"""Where the object store is (docs/contract.md §3): a mixin for the settings of each service that uses it."""

from __future__ import annotations

from pydantic_settings import BaseSettings


class S3Settings(BaseSettings):
    s3_endpoint_url: str | None = None
    s3_bucket: str
    s3_region: str = "auto"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
