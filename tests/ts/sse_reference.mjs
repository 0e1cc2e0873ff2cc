// The reference event-stream reader for internal/sse's differential test (TestReferenceReader):
// eventsource-parser, the parser the official MCP TypeScript SDK client reads SSE with, fed
// as the SDK feeds it (bytes decoded by a streaming TextDecoder, which drops a leading BOM and
// replaces invalid UTF-8 as the standard says).
//
// Input on stdin: one JSON object per line, {"stream": base64, "chunks": [byte counts]}: the
// stream and how it is cut into reads. Output: one JSON line per input line,
// {"events": [{"type": "", "data": "...", "id": null}]}.

import { createParser } from "eventsource-parser";
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { stream, chunks } = JSON.parse(line);
  const bytes = Buffer.from(stream, "base64");
  const events = [];
  const parser = createParser({
    onEvent: (ev) => events.push({ type: ev.event ?? "", data: ev.data, id: ev.id ?? null }),
  });
  const decoder = new TextDecoder("utf-8");
  let at = 0;
  for (const n of chunks ?? []) {
    const text = decoder.decode(bytes.subarray(at, at + n), { stream: true });
    at += n;
    if (text) parser.feed(text);
  }
  const rest = decoder.decode(bytes.subarray(at));
  if (rest) parser.feed(rest);
  process.stdout.write(JSON.stringify({ events }) + "\n");
}
