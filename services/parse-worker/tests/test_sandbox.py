"""The extraction child as a sandbox: no secret in reach, hard limits, and a reply format
that a hostile child cannot turn into code in the worker."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from rag_parse_worker import isolation, sandbox, wire
from rag_parse_worker.extract import CorruptFile, Extracted, ExtractionTimeout, Limits, OcrConfig
from rag_parse_worker.isolation import CRASHED, ExtractionPool

from . import hostile_child

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # real child processes

HOSTILE_CHILD = Path(__file__).parent / "hostile_child.py"
SECRETS = {
    "DATABASE_URL": "postgresql://rag:db-password-1f9e@db.internal:5432/rag",
    "JWT_SECRET": "jwt-secret-8c1d0b7a",
    "S3_ACCESS_KEY_ID": "AKIAS3ACCESSKEY0001",
    "S3_SECRET_ACCESS_KEY": "s3-secret-key-5e2a",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-key-77aa",
    "AWS_SESSION_TOKEN": "aws-session-token-99bb",
    "LLM_API_KEY": "sk-llm-key-4242",
    "EMBEDDING_API_KEY": "sk-embed-key-4343",
    "SOME_FUTURE_PASSWORD": "future-password-1234",
}


def the_child(pool: ExtractionPool) -> int:
    (child,) = pool._children
    return child.process.pid


def environ_of(pid: int) -> dict[str, str]:
    """What the process really sees: the kernel's copy of its environment."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if item)


def limits_of(pid: int) -> dict[str, tuple[str, str]]:
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    out = {}
    for line in lines:
        name, rest = line[:26].strip(), line[26:].split()
        out[name] = (rest[0], rest[1])
    return out


@pytest.fixture
def secrets_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


async def test_the_child_sees_none_of_the_workers_secrets(secrets_in_the_worker: dict[str, str]) -> None:
    pool = ExtractionPool(size=1, limits=Limits(), timeout=30.0)
    await pool.start()
    try:
        env = environ_of(the_child(pool))
        assert set(env) <= set(sandbox.CHILD_ENV_NAMES) | set(sandbox.CHILD_ENV_FIXED), env
        blob = "\0".join(f"{k}={v}" for k, v in env.items())
        for name, value in secrets_in_the_worker.items():
            assert name not in env and value not in blob
        # ... and it still extracts.
        assert (await pool.extract(b"still works", "a.txt", "text/plain")).result.text == "still works"
        # A replacement (for a child found dead) is started the same way.
        dead = the_child(pool)
        os.kill(dead, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await pool.extract(b"replaced", "a.txt", "text/plain")).result.text == "replaced"
        assert the_child(pool) != dead
        assert not set(environ_of(the_child(pool))) & set(secrets_in_the_worker)
    finally:
        await pool.close()


@pytest.mark.parametrize("pool", [{"timeout": 12.0, "memory_limit_mb": 1024}], indirect=True)
async def test_the_child_runs_under_hard_limits_in_its_own_session(pool: ExtractionPool) -> None:
    pid = the_child(pool)
    limits = limits_of(pid)
    budget = sandbox.cpu_budget_seconds(12.0)
    soft_cpu, hard_cpu = limits["Max cpu time"]
    assert 12 < int(soft_cpu) <= budget + 2  # never before the wall-clock kill, soon after it
    assert int(hard_cpu) == sandbox.cpu_lifetime_seconds(budget)
    assert limits["Max address space"] == (str(1024 * 1024 * 1024),) * 2
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max file size"] == ("0", "0")
    assert limits["Max open files"] == (str(sandbox.MAX_OPEN_FILES),) * 2
    assert limits["Max processes"] == ("0", "0")
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    # Inherited descriptors are closed: only the pipes and stderr remain (plus their dups).
    assert len(os.listdir(f"/proc/{pid}/fd")) <= 6
    # The budget is renewed per document: after one, the soft limit still allows a full one.
    await pool.extract(b"one document", "a.txt", "text/plain")
    assert int(limits_of(pid)["Max cpu time"][0]) > 12


def test_a_runaway_past_its_cpu_budget_is_stopped_by_the_kernel() -> None:
    """The safety net without the worker: the child alone, 1 CPU second, a busy loop."""
    code = "from rag_parse_worker import sandbox\nsandbox.apply_child_limits(0, 1)\nwhile True: pass\n"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert result.returncode == -signal.SIGXCPU
    assert time.monotonic() - started < 30


def test_the_worker_makes_itself_non_dumpable() -> None:
    code = (
        "import ctypes\nfrom rag_parse_worker import sandbox\n"
        "libc = ctypes.CDLL(None)\nprint(libc.prctl(3, 0, 0, 0, 0))\n"
        "sandbox.protect_worker()\nprint(libc.prctl(3, 0, 0, 0, 0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "0"]  # PR_GET_DUMPABLE before and after


def test_the_environment_is_an_allow_list() -> None:
    parent = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "HOME": "/home/w", **SECRETS, "NEW_THING": "x"}
    assert sandbox.child_environment(parent) == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        **sandbox.CHILD_ENV_FIXED,
    }


def test_replies_round_trip_without_pickle() -> None:
    limits = Limits(max_text_bytes=100, max_pdf_pages=3)
    replies: list[wire.Reply] = [
        wire.Ok(Extracted(text="héllo\n\x0cpage", format="pdf", page_count=2), 0.25),
        wire.Ok(Extracted(text="plain", format="txt", page_count=None), 0.0),
        wire.Failed("CorruptFile", "The file is not a valid PDF.", "corrupt_file"),
        wire.Failed("LimitExceeded", "Too big.", "limit_exceeded", fatal=True),
        wire.Bug("KeyError: 'oops'"),
        wire.Failed("ExtractionTimeout", "Reading page 2 by OCR took longer than 30 seconds.", "timeout"),
        wire.Failed("OcrUnavailable", "The file is an image.", "ocr_unavailable"),
        wire.Progress(3),
    ]
    for reply in replies:
        header, body = wire.encode_reply(reply)
        assert wire.decode_reply(wire.orjson.dumps(header), body, limits) == reply
    assert wire.decode_limits(wire.limits_header(limits)) == limits
    ocr = OcrConfig(
        languages="eng+deu", tessdata="/usr/share/tessdata", page_timeout_seconds=2.5, max_pages=9, dpi=200
    )
    for config in (ocr, None):
        header = wire.orjson.loads(wire.orjson.dumps(wire.limits_header(limits, config)))
        assert wire.decode_limits(header) == limits and wire.decode_ocr(header) == config


@pytest.mark.parametrize(
    "ocr",
    [
        {
            "languages": "eng; rm -rf /",
            "tessdata": "/x",
            "page_timeout_seconds": 1,
            "max_pages": 1,
            "dpi": 300,
        },
        {"languages": "eng", "tessdata": 7, "page_timeout_seconds": 1, "max_pages": 1, "dpi": 300},
        {"languages": "eng", "tessdata": "/x", "page_timeout_seconds": 0, "max_pages": 1, "dpi": 300},
        {"languages": "eng", "tessdata": "/x", "page_timeout_seconds": 1, "max_pages": True, "dpi": 300},
        {"languages": "eng", "tessdata": "/x", "page_timeout_seconds": 1, "max_pages": 1},
        "eng",
    ],
)
def test_an_ocr_configuration_outside_the_protocol_is_refused(ocr: object) -> None:
    with pytest.raises(wire.ProtocolViolation):
        wire.decode_ocr({"type": "limits", "ocr": ocr})


@pytest.mark.parametrize("page", [0, -1, 10**9, True, "2"])
def test_a_progress_message_names_a_real_page(page: object) -> None:
    raw = wire.orjson.dumps({"status": "progress", "ocr_page": page})
    with pytest.raises(wire.ProtocolViolation):
        wire.decode_reply(raw, b"", Limits())


# -- a hostile child -----------------------------------------------------------

VIOLATIONS = [
    "pickle",
    "pickle-header",
    "oversize-body",
    "oversize-header",
    "text-over-limit",
    "unknown-status",
    "not-an-object",
    "wrong-types",
    "bool-count",
    "extra-key",
    "unknown-format",
    "not-utf8",
    "unknown-error-class",
    "unknown-code",
    "long-message",
    "control-chars",
    "progress-flood",  # a child without OCR may not ask for more time
]


async def hostile_pool(
    behaviour: str, marker: Path, timeout: float = 30.0, ocr: OcrConfig | None = None
) -> ExtractionPool:
    pool = ExtractionPool(
        size=1,
        limits=Limits(max_text_bytes=1000),
        timeout=timeout,
        ocr=ocr,
        child_command=[sys.executable, str(HOSTILE_CHILD), behaviour, str(marker)],
    )
    await pool.start()
    return pool


def test_the_hostile_pickle_is_live(tmp_path: Path) -> None:
    """What the "pickle" children send runs a command when unpickled, as the worker used to."""
    marker = tmp_path / "exploited"
    pickle.loads(pickle.dumps(hostile_child.Exploit(str(marker))))
    assert marker.exists()


@pytest.mark.parametrize("behaviour", VIOLATIONS)
async def test_a_reply_outside_the_protocol_is_a_crash_never_code(behaviour: str, tmp_path: Path) -> None:
    marker = tmp_path / "exploited"
    pool = await hostile_pool(behaviour, marker)
    try:
        before = the_child(pool)
        started = time.monotonic()
        with pytest.raises(CorruptFile) as info:
            await pool.extract(b"a document", "a.txt", "text/plain")
        assert info.value.message == CRASHED
        assert time.monotonic() - started < 10  # nothing waited for a 4 GB body
        assert the_child(pool) != before  # the hostile child was killed and replaced
        with pytest.raises(ProcessLookupError):
            os.kill(before, 0)
        assert not marker.exists()
    finally:
        await pool.close()


async def test_a_child_cannot_buy_time_past_the_pages_a_document_may_have(tmp_path: Path) -> None:
    """Each progress message extends the deadline by a page timeout, up to twice max_pages."""
    ocr = OcrConfig(languages="eng", tessdata="/nowhere", page_timeout_seconds=60, max_pages=2)
    pool = await hostile_pool("progress-flood", tmp_path / "exploited", timeout=1.0, ocr=ocr)
    try:
        started = time.monotonic()
        with pytest.raises(CorruptFile) as info:
            await pool.extract(b"a document", "a.txt", "text/plain")
        assert info.value.message == CRASHED
        assert time.monotonic() - started < 10  # not 1000 pages of 60 s
    finally:
        await pool.close()


async def test_a_child_that_stalls_mid_reply_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    pool = await hostile_pool("half-frame", tmp_path / "exploited", timeout=1.0)
    try:
        before = the_child(pool)
        with pytest.raises(ExtractionTimeout):
            await pool.extract(b"a document", "a.txt", "text/plain")
        assert the_child(pool) != before
    finally:
        await pool.close()


async def test_a_child_flooding_stderr_is_drained_but_not_logged_past_a_cap(tmp_path: Path) -> None:
    pool = await hostile_pool("stderr-flood", tmp_path / "exploited")
    try:
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(CorruptFile):
                await pool.extract(b"a document", "a.txt", "text/plain")
            for _ in range(100):  # the forwarding thread reads the rest of the pipe
                if any(entry["event"] == "extractor_output_truncated" for entry in logs):
                    break
                await asyncio.sleep(0.05)
        output = [entry for entry in logs if entry["event"] == "extractor_output"]
        truncated = [entry for entry in logs if entry["event"] == "extractor_output_truncated"]
        assert len(output) == isolation.MAX_LOGGED_LINES and len(truncated) == 1
        assert output[0]["line"] == "line 0 of a flood"
    finally:
        await pool.close()


# -- the new formats through the child ------------------------------------------


async def test_the_new_formats_and_their_limits_cross_to_the_child_and_back() -> None:
    """A presentation's slides are its page count (even past the PDF page limit); the table
    and e-mail limits reach the child; their errors come back as the same permanent errors."""
    from rag_core.formats import MIME_TYPES
    from rag_parse_worker.extract import LimitExceeded

    from .builders import make_eml, make_pptx, make_xlsx, shape, slide_xml

    limits = Limits(max_pdf_pages=2, max_slides=3, max_sheet_rows=2, max_email_attachments=1)
    header, body = wire.encode_reply(wire.Ok(Extracted(text="a\fb\fc", format="pptx", page_count=3), 0.1))
    assert wire.decode_reply(wire.orjson.dumps(header), body, limits).result.page_count == 3  # type: ignore[union-attr]
    assert wire.decode_limits(wire.limits_header(limits)) == limits
    pool = ExtractionPool(size=1, limits=limits, timeout=30.0)
    await pool.start()
    try:
        deck = make_pptx([(slide_xml(shape(f"Slide {i}")), None) for i in range(3)])
        done = await pool.extract(deck, "d.pptx", MIME_TYPES["pptx"])
        assert done.result.page_count == 3 and done.result.text == "Slide 0\fSlide 1\fSlide 2"
        rows: list[list[object]] = [["n"], [1], [2], [3]]
        with pytest.raises(LimitExceeded, match='The sheet "S" has more than 2 rows'):
            await pool.extract(make_xlsx([("S", rows)]), "s.xlsx", MIME_TYPES["xlsx"])  # type: ignore[list-item]
        two = make_eml("Hi.", attachments=[("a.txt", "text/plain", b"one"), ("b.txt", "text/plain", b"two")])
        with pytest.raises(LimitExceeded, match="more than 1 attachments"):
            await pool.extract(two, "m.eml", MIME_TYPES["eml"])
        csv = await pool.extract(b"a;b\n1;2\n", "t.csv", MIME_TYPES["csv"])
        assert csv.result.text == "columns: a; b\nrow 2: a: 1; b: 2"
    finally:
        await pool.close()
