// bench:burst's floor for the origin: a bare Node HTTP server, in a process
// of its own as the origin is, that answers the cached manifest from memory
// and refuses everything else at once (429, as a full queue does). No
// Express, no logs, no Nix: what a burst costs Node's event loop alone.
// Started by run.ts with the manifest in BARE_MANIFEST (a file), its path in
// BARE_PATH; prints the port it listens on.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const bytes = readFileSync(process.env.BARE_MANIFEST!);
const path = process.env.BARE_PATH!;
const mediaType = process.env.BARE_MEDIA_TYPE!;
const refusal = JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'busy', detail: null }] });
const server = createServer((req, res) => {
  if (req.url === path) {
    res.writeHead(200, { 'Content-Type': mediaType, 'Content-Length': bytes.byteLength });
    res.end(bytes);
    return;
  }
  res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '1' });
  res.end(refusal);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(typeof address === 'object' && address !== null ? address.port : 0);
});
