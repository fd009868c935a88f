"""Which OCR a worker runs: OCR_PROVIDER, OCR_LANGUAGES and the models installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag_parse_worker.extract import OcrConfig
from rag_parse_worker.settings import ParseWorkerSettings

NO_DIRS: tuple[str, ...] = ()


def settings(**values: object) -> ParseWorkerSettings:
    return ParseWorkerSettings(database_url="postgresql://unused", s3_bucket="unused", **values)  # type: ignore[arg-type]


def models(tmp_path: Path, *languages: str) -> dict[str, str]:
    for language in languages:
        (tmp_path / f"{language}.traineddata").write_bytes(b"model")
    return {"TESSDATA_PREFIX": str(tmp_path)}


def test_unset_means_tesseract_where_the_models_are(tmp_path: Path) -> None:
    env = models(tmp_path, "eng", "deu")
    assert settings().ocr_config(env, NO_DIRS) == OcrConfig(
        languages="eng", tessdata=str(tmp_path), page_timeout_seconds=30.0, max_pages=200, dpi=300
    )
    custom = settings(ocr_languages="eng+deu", ocr_page_timeout_seconds=5, ocr_max_pages=10, ocr_dpi=200)
    assert custom.ocr_config(env, NO_DIRS) == OcrConfig("eng+deu", str(tmp_path), 5.0, 10, 200)


def test_unset_means_off_where_a_model_is_missing(tmp_path: Path) -> None:
    assert settings().ocr_config({}, NO_DIRS) is None
    assert settings(ocr_languages="eng+fra").ocr_config(models(tmp_path, "eng"), NO_DIRS) is None


def test_off_is_off_even_with_models(tmp_path: Path) -> None:
    assert settings(ocr_provider="off").ocr_config(models(tmp_path, "eng"), NO_DIRS) is None


def test_the_distribution_directories_are_searched(tmp_path: Path) -> None:
    models(tmp_path, "eng")
    config = settings().ocr_config({}, ("/nonexistent/tessdata", str(tmp_path)))
    assert config is not None and config.tessdata == str(tmp_path)


def test_tesseract_asked_for_but_not_installed_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as missing:
        settings(ocr_provider="tesseract", ocr_languages="eng+fra").ocr_config(
            models(tmp_path, "eng"), NO_DIRS
        )
    assert str(missing.value) == (
        f"OCR_PROVIDER=tesseract but no Tesseract model for fra is installed in {tmp_path}; "
        "install tesseract-ocr-fra (Debian, Ubuntu) or set OCR_PROVIDER=off"
    )
    with pytest.raises(ValueError, match="no tessdata directory found; set TESSDATA_PREFIX"):
        settings(ocr_provider="tesseract").ocr_config({}, NO_DIRS)


@pytest.mark.parametrize(
    "languages", ["", "eng;rm -rf /", "eng+", "../eng", "e" * 41, "+".join(["eng"] * 11)]
)
def test_languages_are_tesseracts_form(languages: str) -> None:
    with pytest.raises(ValidationError):
        settings(ocr_languages=languages)


def test_the_job_backstop_covers_the_longest_ocr(tmp_path: Path) -> None:
    worker = settings(parse_timeout_seconds=120, ocr_page_timeout_seconds=30, ocr_max_pages=200)
    assert worker.job_timeout_seconds(None) == 120 + 300
    config = worker.ocr_config(models(tmp_path, "eng"), NO_DIRS)
    # Two reads of 200 pages at most (the scans, then every page of a garbage text layer), 30 + 5 s each.
    assert worker.job_timeout_seconds(config) == 120 + 2 * 200 * 35 + 300


@pytest.mark.integration
def test_the_worker_refuses_to_start_without_the_models_it_was_told_to_use(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://127.0.0.1:1/none",
        "S3_BUCKET": "none",
        "OCR_PROVIDER": "tesseract",
        "OCR_LANGUAGES": "eng+xyz",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rag_parse_worker.main"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert (
        "configuration error: OCR_PROVIDER=tesseract but no Tesseract model for xyz is installed"
        in done.stderr
    )
