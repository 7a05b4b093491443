// The page at `/`: what this registry is and how to pull from it. Short on
// purpose; a richer site can come later.
import { REQUEST_ID_HEADER } from '../shared/headers.ts';
import { respond, type RequestInfo } from './responses.ts';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function landingPage(info: RequestInfo): Response {
  // The host the client used is the one its `docker pull` must name.
  const host = escapeHtml(info.url.host);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nixery-edge: container images built from their names</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
pre { background: #f4f4f4; padding: .75rem 1rem; overflow-x: auto; }
code { font-family: ui-monospace, monospace; }
</style>
</head>
<body>
<h1>nixery-edge</h1>
<p>A container registry that builds images on demand with <a href="https://nixos.org/">Nix</a>.
The name of an image is the list of packages in it: ask for <code>${host}/curl/jq</code> and you get an
image holding <code>curl</code> and <code>jq</code>, built the first time anyone asks and served from the cache after that.</p>
<h2>Pull</h2>
<pre><code>docker pull ${host}/shell/hello
podman pull ${host}/shell/hello
skopeo copy docker://${host}/hello:latest oci:hello:latest</code></pre>
<ul>
<li>Separate packages with <code>/</code>; their order does not matter.</li>
<li><code>shell</code> adds an interactive base: bash, coreutils, nano and friends.</li>
<li>Start the name with <code>arm64/</code> for an ARM image (the default is <code>amd64</code>).</li>
<li>Images are read-only: there is nothing to push.</li>
</ul>
<p>The pull API lives under <a href="/v2/"><code>/v2/</code></a>.</p>
</body>
</html>
`;
  const headers = new Headers({ 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'public, max-age=3600', [REQUEST_ID_HEADER]: info.requestId });
  return respond(200, headers, html);
}
