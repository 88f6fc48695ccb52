// Parse an AsyncAPI document with the official parser and print its diagnostics as JSON:
// node asyncapi.mjs <file> -> {"errors": [...], "warnings": [...], "channels": [...],
// "operations": [{"id", "action", "channel", "reply"}]}
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const pick = (severity) =>
  diagnostics
    .filter((d) => d.severity === severity)
    .map((d) => ({ code: d.code, message: d.message, path: d.path }));
const result = {
  errors: pick(DiagnosticSeverity.Error),
  warnings: pick(DiagnosticSeverity.Warning),
  channels: [],
  operations: [],
};
if (document) {
  result.channels = document.channels().all().map((c) => c.address());
  result.operations = document
    .operations()
    .all()
    .map((op) => ({
      id: op.id(),
      action: op.action(),
      channel: op.channels().all().map((c) => c.address())[0],
      messages: op.messages().all().map((m) => m.name()),
      reply: op.reply() ? op.reply().messages().all().map((m) => m.name()) : null,
    }));
}
process.stdout.write(JSON.stringify(result));
