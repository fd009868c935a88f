"""An Office Open XML package (.docx, .pptx, .xlsx) opened with the guard rails every reader shares.

A package is a zip of XML parts. No third-party parser reads them: python-pptx and openpyxl
parse with lxml, which builds each part as a tree in memory (a slide or a sheet of 200 MB of
XML is 200 MB of XML plus a tree many times that) and leaves DTD handling to each caller;
streaming every part through expat, as docx.py always did, keeps one set of guards for
the three formats, costs memory in proportion to the text only, and adds no dependency to
the sandboxed child. The guards:

- decompression bombs: the declared uncompressed size and the compression ratio of a part
  are checked before reading it, and the read itself stops at a hard cap (a zip can lie
  about sizes); the uncompressed size cap (Limits.max_docx_xml_bytes, named for the first
  format that had it) counts every part read from the package together;
- XML attacks: any DTD or entity declaration is refused (an Office part never has one),
  so neither "billion laughs" nor external entities can happen;
- one giant token: expat 2.5 costs super-linear time on a single tag, attribute value or
  comment of tens of MB (about 2 s for 64 MB), so a part in which no parse event happened
  for MAX_TOKEN_BYTES is refused. Text nodes are not tokens of this kind: expat reports
  them as they stream.

Every failure of the zip or the XML is the format's "not a valid ..." sentence (CorruptFile).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from xml.parsers import expat

from rag_core.formats import CFB_MAGIC, ENCRYPTION_INFO, OOXML, OoxmlFormat
from rag_parse_worker.extract.errors import CorruptFile, EncryptedFile, LimitExceeded, UnsupportedFormat
from rag_parse_worker.extract.limits import Limits

RELS_PART = "_rels/.rels"
RELS_CAP = 1024 * 1024
READ_CHUNK = 1024 * 1024
MAX_TOKEN_BYTES = 16 * 1024 * 1024
OFFICE_DOCUMENT_REL = "/officeDocument"


@dataclass(frozen=True, slots=True)
class Wording:
    """The sentences a user reads about one format's package."""

    invalid: str
    bomb: str
    giant_token: str


def _wording(noun: str, ext: str) -> Wording:
    return Wording(
        invalid=f"The file is not a valid {noun} ({ext}).",
        bomb=f"The {noun} expands to an unreasonable size when unpacked and was not processed.",
        giant_token=f"The {noun} contains a single XML element larger than 16 MB and was not processed.",
    )


WORDING: dict[OoxmlFormat, Wording] = {
    "docx": _wording("Word document", ".docx"),
    "pptx": _wording("PowerPoint presentation", ".pptx"),
    "xlsx": _wording("Excel workbook", ".xlsx"),
}

StartHandler = Callable[[str, dict[str, str]], None]
EndHandler = Callable[[str], None]
DataHandler = Callable[[str], None]


class _Forbidden(Exception):
    pass


def _forbid(*_args: object) -> None:
    raise _Forbidden


def _forbid_external(*_args: object) -> int:
    raise _Forbidden


def new_parser() -> expat.XMLParserType:
    """An expat parser that refuses any DTD or entity, names elements "namespace-uri local"."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid_external
    return parser


def refuse_compound_file(data: bytes, fmt: OoxmlFormat) -> None:
    """A compound file is no zip: say why, with the sentence the api gives at upload."""
    if not data.startswith(CFB_MAGIC):
        return
    if ENCRYPTION_INFO in data:
        raise EncryptedFile(OOXML[fmt].encrypted)
    raise UnsupportedFormat(OOXML[fmt].legacy)


def resolve(source_part: str, target: str) -> str:
    """The part name a relationship target of `source_part` names (relative to its folder)."""
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


class Package:
    """The open zip, with the budget of uncompressed XML its parts may add up to."""

    def __init__(self, zf: zipfile.ZipFile, fmt: OoxmlFormat, limits: Limits) -> None:
        self.zf = zf
        self.fmt = fmt
        self.wording = WORDING[fmt]
        self.limits = limits
        self.unpacked_left = limits.max_docx_xml_bytes

    def has(self, name: str) -> bool:
        try:
            self.zf.getinfo(name)
        except KeyError:
            return False
        return True

    def _check_member(self, info: zipfile.ZipInfo, cap: int) -> None:
        if info.flag_bits & 0x1:
            raise EncryptedFile(OOXML[self.fmt].encrypted)
        limits = self.limits
        if info.file_size > cap:
            raise LimitExceeded(self.wording.bomb)
        if info.file_size > limits.docx_ratio_floor_bytes and info.file_size > limits.max_docx_ratio * max(
            info.compress_size, 1
        ):
            raise LimitExceeded(self.wording.bomb)

    def _stream(self, info: zipfile.ZipInfo, cap: int, parser: expat.XMLParserType) -> int:
        """Feed the member to `parser`, stopping at `cap` bytes whatever the header says; the bytes read."""
        total = 0
        with self.zf.open(info) as member:
            while chunk := member.read(READ_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise LimitExceeded(self.wording.bomb)
                parser.Parse(chunk, False)
                # The byte index of the last parse event: far behind what was fed means one
                # token still open (see the module docstring).
                if total - max(parser.CurrentByteIndex, 0) > MAX_TOKEN_BYTES:
                    raise LimitExceeded(self.wording.giant_token)
        parser.Parse(b"", True)
        return total

    def parse(
        self,
        name: str,
        start: StartHandler | None = None,
        end: EndHandler | None = None,
        data: DataHandler | None = None,
    ) -> None:
        """Stream the part `name` through the handlers; CorruptFile when it is missing."""
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise CorruptFile(self.wording.invalid) from None
        self._check_member(info, self.unpacked_left)
        parser = new_parser()
        if start is not None:
            parser.StartElementHandler = start
        if end is not None:
            parser.EndElementHandler = end
        if data is not None:
            parser.CharacterDataHandler = data
        self.unpacked_left -= self._stream(info, self.unpacked_left, parser)

    def relationships(self, part: str) -> list[tuple[str, str]]:
        """(type, target part name) of each internal relationship of `part` ("" for the
        package's own, _rels/.rels); none when the .rels part is missing."""
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels") if part else RELS_PART
        try:
            info = self.zf.getinfo(rels_name)
        except KeyError:
            return []
        self._check_member(info, RELS_CAP)
        found: list[tuple[str, str]] = []

        def start(name: str, attrs: dict[str, str]) -> None:
            if name.endswith(" Relationship") and attrs.get("TargetMode", "Internal") == "Internal":
                target = attrs.get("Target", "")
                if target:
                    found.append((attrs.get("Type", ""), resolve(part or "x", target)))

        parser = new_parser()
        parser.StartElementHandler = start
        self._stream(info, RELS_CAP, parser)
        return found

    def related(self, part: str, kind: str) -> list[str]:
        """The parts `part` relates to by type `kind` (the type's last path segment), in order."""
        names: list[str] = []
        for rel_type, target in self.relationships(part):
            if rel_type.rsplit("/", 1)[-1] == kind and target not in names:
                names.append(target)
        return names

    def relationship_targets(self, part: str) -> dict[str, str]:
        """Relationship id -> target part name, for the parts that name others by r:id."""
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        try:
            info = self.zf.getinfo(rels_name)
        except KeyError:
            return {}
        self._check_member(info, RELS_CAP)
        found: dict[str, str] = {}

        def start(name: str, attrs: dict[str, str]) -> None:
            if name.endswith(" Relationship") and attrs.get("TargetMode", "Internal") == "Internal":
                if attrs.get("Id") and attrs.get("Target"):
                    found[attrs["Id"]] = resolve(part, attrs["Target"])

        parser = new_parser()
        parser.StartElementHandler = start
        self._stream(info, RELS_CAP, parser)
        return found

    def main_part(self, default: str) -> str:
        """The officeDocument target from _rels/.rels (almost always `default`)."""
        for kind, target in self.relationships(""):
            if kind.endswith(OFFICE_DOCUMENT_REL):
                return target
        return default


@contextmanager
def open_package(data: bytes, fmt: OoxmlFormat, limits: Limits) -> Iterator[Package]:
    """The package of `data`; every zip or XML failure inside the block is the format's
    "not a valid ..." CorruptFile, a compound file the api's sentence."""
    refuse_compound_file(data, fmt)
    invalid = WORDING[fmt].invalid
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        raise CorruptFile(invalid) from None
    try:
        with zf:
            yield Package(zf, fmt, limits)
    except _Forbidden:
        raise CorruptFile(invalid) from None
    except (
        expat.ExpatError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ):
        # Malformed XML, a bad CRC or deflate stream, an unsupported compression method.
        raise CorruptFile(invalid) from None
