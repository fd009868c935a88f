"""Build real test files byte by byte: PDFs (plain and RC4-encrypted), .docx, .pptx and .xlsx zips, e-mails.

`python services/parse-worker/tests/builders.py` rewrites tests/fixtures/; the committed
fixtures are its output, and `test_extract.py` checks they still match it.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import struct
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------- PDF


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _padded(password: str) -> bytes:
    return (password.encode("latin-1") + _PAD)[:32]


def make_pdf(pages: list[list[str]], *, user_password: str | None = None) -> bytes:
    """A PDF 1.4 with one Helvetica text line per string, one list per page.

    With `user_password`, the file is encrypted with the standard security handler
    (revision 2, 40-bit RC4): no reader opens it without the password.
    """
    page_count = len(pages)
    # Objects: 1 catalog, 2 pages, 3 font, then (page, content) per page, then Encrypt.
    first_page = 4
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(page_count))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    streams: dict[int, bytes] = {}
    for i, lines in enumerate(pages):
        page_num = first_page + 2 * i
        content = b"BT /F1 12 Tf 14 TL 72 720 Td " + b" ".join(
            _pdf_string(line) + b" Tj T*" for line in lines
        )
        content += b" ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_num + 1} 0 R >>".encode()
        )
        objects.append(b"")  # the stream object, filled below
        streams[page_num + 1] = content

    file_id = hashlib.md5(b"rag-engine test fixture").digest()
    trailer_extra = b""
    key: bytes | None = None
    if user_password is not None:
        permissions = -44
        owner_key = hashlib.md5(_padded("owner-" + user_password)).digest()[:5]
        o_value = _rc4(owner_key, _padded(user_password))
        key = hashlib.md5(
            _padded(user_password) + o_value + struct.pack("<i", permissions) + file_id
        ).digest()[:5]
        u_value = _rc4(key, _PAD)
        objects.append(
            f"<< /Filter /Standard /V 1 /R 2 /O <{o_value.hex()}> /U <{u_value.hex()}> /P {permissions} >>".encode()
        )
        trailer_extra = f"/Encrypt {len(objects)} 0 R ".encode()

    for num, content in streams.items():
        if key is not None:
            object_key = hashlib.md5(key + num.to_bytes(3, "little") + (0).to_bytes(2, "little")).digest()[
                :10
            ]
            content = _rc4(object_key, content)
        objects[num - 1] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R %s/ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer_extra,
        file_id.hex().encode(),
        file_id.hex().encode(),
        xref,
    )
    return bytes(out)


MULTIPAGE_PAGES = [
    ["Page one: the quick brown fox", "jumps over the lazy dog."],
    ["Page two: caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "costs 5 \u20ac."],
    [],  # a blank page still counts as a page
    ["Page four: the end."],
]


# -------------------------------------------------------------------------- DOCX

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)


REL_TYPE_BASE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def part_xml(root: str, body: str) -> str:
    """A secondary part (w:ftr, w:hdr, w:footnotes, w:comments...) around `body`."""
    return f'<w:{root} xmlns:w="{W}">{body}</w:{root}>'


def para(*runs: str, style: str | None = None) -> str:
    """A paragraph; a run of "\\t" is a tab, "\\n" a line break."""
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>'
    body = ""
    for run in runs:
        if run == "\t":
            body += "<w:r><w:tab/></w:r>"
        elif run == "\n":
            body += "<w:r><w:br/></w:r>"
        else:
            body += f'<w:r><w:t xml:space="preserve">{escape(run)}</w:t></w:r>'
    return f"<w:p>{ppr if style else ''}{body}</w:p>"


def table(rows: list[list[str]]) -> str:
    cells = "".join(
        "<w:tr>" + "".join(f"<w:tc><w:tcPr/>{para(cell)}</w:tc>" for cell in row) + "</w:tr>" for row in rows
    )
    return f"<w:tbl><w:tblPr/>{cells}</w:tbl>"


def document_xml(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{W}" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        f"<w:body>{body}<w:sectPr/></w:body></w:document>"
    )


def make_docx(
    body: str | bytes,
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    parts: dict[str, str | bytes] | None = None,
    relationships: list[tuple[str, str]] | None = None,
) -> bytes:
    """A .docx whose word/document.xml is `body` (a full XML document); `parts` are more
    members (name: content) and `relationships` the body's (type's last segment, target)."""
    members: list[tuple[str, str | bytes]] = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", ROOT_RELS),
        ("word/document.xml", body),
    ]
    if relationships is not None:
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{REL_TYPE_BASE}{kind}" Target="{escape(target)}"/>'
            for i, (kind, target) in enumerate(relationships, 1)
        )
        members.append(
            ("word/_rels/document.xml.rels", f'<Relationships xmlns="{RELS_NS}">{rels}</Relationships>')
        )
    members += list((parts or {}).items())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members:
            # A fixed timestamp: the same input always makes the same bytes.
            zf.writestr(
                zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=compression
            )
    return buffer.getvalue()


SAMPLE_DOCX_BODY = document_xml(
    para("Quarterly report", style="Heading1")
    + para("Revenue grew ", "strongly", " this quarter.")
    + para("Name:", "\t", "Ada", "\n", "Second line")
    + "<w:p><w:del><w:r><w:delText>deleted words</w:delText></w:r></w:del>"
    "<w:r><w:t>Kept words</w:t></w:r></w:p>"
    + table([["Region", "Sales", "Growth"], ["North", "1,200", "5 %"], ["S\u00fcd", "900", ""]])
    + "<w:p><w:r><mc:AlternateContent><mc:Choice><w:t>Box text</w:t></mc:Choice>"
    "<mc:Fallback><w:t>Box text</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>"
    + para("After the table & done.")
)


def make_zip(members: list[tuple[str, str | bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `members` in that order, with fixed timestamps (the same input, the same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members:
            zf.writestr(
                zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, compress_type=compression
            )
    return buffer.getvalue()


def rels(relationships: list[tuple[str, str, str]]) -> str:
    """A .rels part of (id, type's last segment, target)."""
    body = "".join(
        f'<Relationship Id="{rid}" Type="{REL_TYPE_BASE}{kind}" Target="{escape(target)}"/>'
        for rid, kind, target in relationships
    )
    return f'<Relationships xmlns="{RELS_NS}">{body}</Relationships>'


# ------------------------------------------------------------------------- PPTX

P = "http://schemas.openxmlformats.org/presentationml/2006/main"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def shape(*paragraphs: str, placeholder: str | None = None) -> str:
    """A p:sp text shape; each paragraph's "\n" is an a:br line break."""
    ph = f'<p:nvPr><p:ph type="{placeholder}"/></p:nvPr>' if placeholder else "<p:nvPr/>"
    body = "".join(
        "<a:p>"
        + "<a:br/>".join(f"<a:r><a:rPr/><a:t>{escape(line)}</a:t></a:r>" for line in text.split("\n"))
        + "</a:p>"
        for text in paragraphs
    )
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/>{ph}</p:nvSpPr><p:spPr/>'
        f"<p:txBody><a:bodyPr/>{body}</p:txBody></p:sp>"
    )


def group(*shapes: str) -> str:
    return f'<p:grpSp><p:nvGrpSpPr><p:cNvPr id="9" name="g"/></p:nvGrpSpPr><p:grpSpPr/>{"".join(shapes)}</p:grpSp>'


def slide_table(rows: list[list[str]]) -> str:
    cells = "".join(
        "<a:tr>"
        + "".join(
            f"<a:tc><a:txBody><a:bodyPr/><a:p><a:r><a:t>{escape(c)}</a:t></a:r></a:p></a:txBody></a:tc>"
            for c in row
        )
        + "</a:tr>"
        for row in rows
    )
    return f"<p:graphicFrame><a:graphic><a:graphicData><a:tbl>{cells}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>"


def slide_xml(*shapes: str, root: str = "sld") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:{root} xmlns:p="{P}" xmlns:a="{A}" xmlns:r="{R}">'
        f"<p:cSld><p:spTree>{''.join(shapes)}</p:spTree></p:cSld></p:{root}>"
    )


def make_pptx(
    slides: list[tuple[str, str | None]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    order: list[int] | None = None,
) -> bytes:
    """A .pptx of (slide XML, notes XML or None); `order` lists the slides' files in show order."""
    ids = "".join(
        f'<p:sldId id="{256 + i}" r:id="rId{i + 10}"/>'
        for i in (order if order is not None else range(len(slides)))
    )
    members: list[tuple[str, str | bytes]] = [
        ("[Content_Types].xml", "<Types/>"),
        ("_rels/.rels", rels([("rId1", "officeDocument", "ppt/presentation.xml")])),
        (
            "ppt/presentation.xml",
            f'<p:presentation xmlns:p="{P}" xmlns:r="{R}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>',
        ),
        (
            "ppt/_rels/presentation.xml.rels",
            rels([(f"rId{i + 10}", "slide", f"slides/slide{i + 1}.xml") for i in range(len(slides))]),
        ),
    ]
    for i, (slide, notes) in enumerate(slides, 1):
        members.append((f"ppt/slides/slide{i}.xml", slide))
        if notes is not None:
            members.append(
                (
                    f"ppt/slides/_rels/slide{i}.xml.rels",
                    rels([("rId1", "notesSlide", f"../notesSlides/notesSlide{i}.xml")]),
                )
            )
            members.append((f"ppt/notesSlides/notesSlide{i}.xml", notes))
    return make_zip(members, compression)


SAMPLE_PPTX_SLIDES: list[tuple[str, str | None]] = [
    (
        slide_xml(
            shape("Quarterly review", placeholder="title"),
            shape("Revenue grew in every region", "Costs fell\nagain"),
            shape("12", placeholder="sldNum"),
        ),
        slide_xml(shape("", placeholder="sldImg"), shape("Mention the new office in Lyon."), root="notes"),
    ),
    (
        slide_xml(
            shape("Regions", placeholder="title"),
            slide_table([["Region", "Sales"], ["North", "1,200"]]),
            group(shape("Grouped caption"), group(shape("Deeply grouped note"))),
        ),
        None,
    ),
]


# ------------------------------------------------------------------------- XLSX

S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

XlsxCell = str | int | float | tuple[str, str]  # text (shared), number, or (xml attributes, inner xml)


def _col(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def sheet_xml(rows: list[list[XlsxCell | None]], strings: list[str]) -> str:
    """A worksheet; str cells go to the shared strings `strings`, (attrs, inner) are written raw."""
    out = []
    for r, row in enumerate(rows, 1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{_col(c)}{r}"
            if value is None:
                continue
            if isinstance(value, tuple):
                cells.append(f'<c r="{ref}" {value[0]}>{value[1]}</c>')
            elif isinstance(value, str):
                if value not in strings:
                    strings.append(value)
                cells.append(f'<c r="{ref}" t="s"><v>{strings.index(value)}</v></c>')
            else:
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        out.append(f'<row r="{r}">{"".join(cells)}</row>')
    return f'<worksheet xmlns="{S}"><sheetData>{"".join(out)}</sheetData></worksheet>'


XLSX_STYLES = (
    f'<styleSheet xmlns="{S}"><numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/>'
    '<numFmt numFmtId="165" formatCode="&quot;at&quot; h:mm"/></numFmts>'
    '<cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="165"/>'
    '<xf numFmtId="9"/></cellXfs></styleSheet>'
)


def make_xlsx(
    sheets: list[tuple[str, list[list[XlsxCell | None]]]],
    *,
    raw_sheets: dict[int, str | bytes] | None = None,
    date1904: bool = False,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A workbook of (name, rows) sheets; `raw_sheets` replaces sheet i's XML (0-based)."""
    strings: list[str] = []
    sheet_parts = [sheet_xml(rows, strings) for _, rows in sheets]
    for i, raw in (raw_sheets or {}).items():
        sheet_parts[i] = raw  # type: ignore[call-overload]
    listed = "".join(
        f'<sheet name="{escape(name)}" sheetId="{i + 1}" r:id="rId{i + 10}"/>'
        for i, (name, _) in enumerate(sheets)
    )
    pr = '<workbookPr date1904="1"/>' if date1904 else "<workbookPr/>"
    sst = "".join(f'<si><t xml:space="preserve">{escape(t)}</t></si>' for t in strings)
    members: list[tuple[str, str | bytes]] = [
        ("[Content_Types].xml", "<Types/>"),
        ("_rels/.rels", rels([("rId1", "officeDocument", "xl/workbook.xml")])),
        ("xl/workbook.xml", f'<workbook xmlns="{S}" xmlns:r="{R}">{pr}<sheets>{listed}</sheets></workbook>'),
        (
            "xl/_rels/workbook.xml.rels",
            rels(
                [(f"rId{i + 10}", "worksheet", f"worksheets/sheet{i + 1}.xml") for i in range(len(sheets))]
                + [("rId1", "sharedStrings", "sharedStrings.xml"), ("rId2", "styles", "styles.xml")]
            ),
        ),
        ("xl/sharedStrings.xml", f'<sst xmlns="{S}">{sst}</sst>'),
        ("xl/styles.xml", XLSX_STYLES),
    ]
    members += [(f"xl/worksheets/sheet{i + 1}.xml", part) for i, part in enumerate(sheet_parts)]
    return make_zip(members, compression)


SAMPLE_XLSX_SHEETS: list[tuple[str, list[list[XlsxCell | None]]]] = [
    (
        "Sales",
        [
            ["Region", "Sales", "Growth", "Closed"],
            ["North", 1200, ('s="4"', "<v>0.05</v>"), ('s="1"', "<v>45382</v>")],
            ["S\u00fcd", 900.5, None, ('s="2"', "<v>45383</v>")],
            [
                ('t="inlineStr"', "<is><t>Inline</t></is>"),
                ('t="str"', "<f>A1&amp;B1</f><v>RegionSales</v>"),
                ('t="b"', "<v>1</v>"),
                ('t="e"', "<v>#DIV/0!</v>"),
            ],
        ],
    ),
    ("Figures", [[1, 2, 3], [4, 5, 6.25]]),
    ("Shipping", [["Cargo", "Port"], ["Copper kettles shipped by freighter", "Reykjavik"]]),
]

INVENTORY_CSV = (
    "Item;Warehouse;Count\r\nOak barrels aged in the Bordeaux cellar;Bordeaux;48\r\n"
    "Clay amphorae;Marseille;12\r\n"
).encode("cp1252")

SAMPLE_EML_BODY = "Charles,\n\nthe orchard harvest of quinces doubled this autumn.\n\nAda\n"


# -------------------------------------------------------------------------- EML


def make_eml(
    body: str,
    *,
    subject: str = "Quarterly figures",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    charset: str = "utf-8",
) -> bytes:
    """A MIME message: a text/plain body (or only `html` when body is ""), attachments of (name, mime, bytes)."""
    from email.message import EmailMessage
    from email.policy import default

    message = EmailMessage(policy=default)
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = "Charles Babbage <charles@example.org>"
    message["Date"] = "Mon, 01 Jan 2024 09:30:00 +0000"
    message["Subject"] = subject
    if body:
        message.set_content(body, charset=charset)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    for name, mime, data in attachments or []:
        maintype, subtype = mime.split("/", 1)
        if mime == "message/rfc822":
            from email import message_from_bytes

            message.add_attachment(message_from_bytes(data, policy=default), filename=name)
        else:
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    if message.is_multipart():  # a boundary of the content, not random: the same input, the same bytes
        digest = hashlib.sha256(f"{subject}\0{body}\0{html}\0{len(attachments or [])}".encode()).hexdigest()
        message.set_boundary(f"==rag-{digest[:24]}==")
    return message.as_bytes(policy=default.clone(linesep="\r\n"))


SAMPLE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Page title is not body text</title>
  <style>body { font-family: sans-serif; } .x::after { content: "styled"; }</style>
  <script>var secret = "<p>not visible</p>"; console.log(secret);</script>
</head>
<body>
  <nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
  <h1>Caf\u00e9 &amp; Bakery</h1>
  <p>Fresh   bread
     every morning.<br>Open 7&nbsp;days.</p>
  <noscript>Please enable JavaScript.</noscript>
  <template><p>template text</p></template>
  <ul><li>Croissant</li><li>Baguette</li></ul>
  <table><tr><th>Item</th><th>Price</th></tr><tr><td>Tart</td><td>3 \u20ac</td></tr></table>
  <script type="module">import x from "./y.js";</script>
</body>
</html>
"""

LATIN1_TEXT = "Cr\u00e8me br\u00fbl\u00e9e, na\u00efve fa\u00e7ade, \u00bfqu\u00e9?\n"
UTF16_TEXT = (
    "UTF-16 text: \u65e5\u672c\u8a9e, \u00e9t\u00e9, \u0394\u03b5\u03bb\u03c4\u03b1.\r\nSecond line.\r\n"
)


def fixture_files() -> dict[str, bytes]:
    multipage = make_pdf(MULTIPAGE_PAGES)
    return {
        "multipage.pdf": multipage,
        "encrypted.pdf": make_pdf([["Top secret"]], user_password="secret"),
        "corrupt.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n",
        "truncated.pdf": multipage[: len(multipage) // 3],
        "blank.pdf": make_pdf([[], []]),
        "report.docx": make_docx(SAMPLE_DOCX_BODY),
        "page.html": SAMPLE_HTML.encode("utf-8"),
        "utf16-bom.txt": codecs.BOM_UTF16_LE + UTF16_TEXT.encode("utf-16-le"),
        "latin1.txt": LATIN1_TEXT.encode("latin-1"),
        "notes.md": b"# Notes\n\nSome *markdown* text.\n\n- item one\n- item two\n",
        "review.pptx": make_pptx(SAMPLE_PPTX_SLIDES),
        "sales.xlsx": make_xlsx(SAMPLE_XLSX_SHEETS),
        "inventory.csv": INVENTORY_CSV,
        "memo.eml": make_eml(
            SAMPLE_EML_BODY,
            subject="Harvest",
            attachments=[
                ("inventory.csv", "text/csv", INVENTORY_CSV),
                ("logo.png", "image/png", b"\x89PNG\r\n"),
            ],
        ),
    }


def write_fixtures(directory: Path = FIXTURES) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in fixture_files().items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    write_fixtures(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES)
