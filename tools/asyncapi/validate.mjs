// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned by
// package-lock.json): `node tools/asyncapi/validate.mjs docs/asyncapi.yaml`, run by `make lint`.
//
// Why the parser and not a JSON-schema check of our own: it applies the AsyncAPI 3 schema,
// resolves every $ref and runs the spec's semantic rules (the same Spectral ruleset as the
// AsyncAPI CLI), so a broken reference or a message no operation sends is caught too.
// Errors and warnings are printed (infos and hints are not: e.g. "3.1.0 exists", while the
// document is 3.0 on purpose); the exit status is 1 when one has severity error.
import { Parser, fromFile, DiagnosticSeverity } from "@asyncapi/parser";

const SHOWN = { [DiagnosticSeverity.Error]: "error", [DiagnosticSeverity.Warning]: "warning" };

const path = process.argv[2];
if (!path) {
  console.error("usage: node tools/asyncapi/validate.mjs <asyncapi.yaml>");
  process.exit(2);
}

const { document, diagnostics } = await fromFile(new Parser(), path).parse();
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors += 1;
  if (!(d.severity in SHOWN)) continue;
  const where = d.path.length ? d.path.join(".") : "(document)";
  const line = d.range ? `:${d.range.start.line + 1}` : "";
  console.log(`${path}${line}: ${SHOWN[d.severity]}: ${d.code}: ${d.message} (${where})`);
}
if (errors > 0 || document === undefined) {
  console.error(`error: ${path} is not a valid AsyncAPI document (${errors} error(s))`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${document.version()}`);
