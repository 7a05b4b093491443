// The page at `/`, rendered by the Worker: what this registry is, how to
// pull from it, and a search form that works as a plain GET form (results
// rendered here, from the same cached search the JSON API answers). The
// script (client.ts) adds composing an image, building it and watching it
// build; everything it needs is already in this HTML, hidden until it runs.
//
// Pure: no Workers API, so the Node unit tests render it directly.
import { API_LIMITS } from '../../shared/api.ts';
import type { SearchQuery } from '../../shared/api.ts';
import { CLIENT_SCRIPT_PATH } from './client.ts';

export interface SearchResults {
  total: number;
  packages: { attrPath: string; name: string; version: string; description: string }[];
}

export interface PageInput {
  /** The host the page was asked for: the one a pull must name. */
  host: string;
  /** Plain HTTP (a local registry): clients must be told to allow it. */
  insecure: boolean;
  query: SearchQuery | null;
  results: SearchResults | null;
  /** Why there are no results (a refused query, an origin that is down). */
  error: string | null;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The pull commands of one image, for the three clients people use. */
export function pullCommands(host: string, name: string, tag: string, insecure: boolean): { client: string; command: string }[] {
  const local = name.split('/').pop() ?? name;
  return [
    { client: 'docker', command: `docker pull ${host}/${name}:${tag}` },
    { client: 'podman', command: `podman pull ${insecure ? '--tls-verify=false ' : ''}${host}/${name}:${tag}` },
    { client: 'skopeo', command: `skopeo copy ${insecure ? '--src-tls-verify=false ' : ''}docker://${host}/${name}:${tag} oci:${local}:${tag}` },
  ];
}

function searchHref(query: SearchQuery, offset: number): string {
  const params = new URLSearchParams({ q: query.q });
  if (query.tag !== 'latest') params.set('tag', query.tag);
  if (offset > 0) params.set('offset', String(offset));
  return `/?${params.toString()}#results`;
}

function renderResults(input: PageInput): string {
  if (input.error !== null) return `<p class="error" role="alert">${escapeHtml(input.error)}</p>`;
  const { query, results } = input;
  if (query === null || results === null) return '';
  if (results.total === 0) return `<p>No package matches <strong>${escapeHtml(query.q)}</strong>.</p>`;
  const first = query.offset + 1;
  const last = query.offset + results.packages.length;
  const rows = results.packages
    .map((p) => {
      const image = p.attrPath.toLowerCase();
      return `<tr>
<th scope="row"><code class="attr">${escapeHtml(p.attrPath)}</code><span class="pull-hint">docker pull ${escapeHtml(input.host)}/${escapeHtml(image)}</span></th>
<td>${escapeHtml(p.version)}</td>
<td>${escapeHtml(p.description)}</td>
<td><button type="button" class="add" data-attr="${escapeHtml(p.attrPath)}" aria-label="Add ${escapeHtml(p.attrPath)} to the image" hidden>Add</button></td>
</tr>`;
    })
    .join('\n');
  const nav: string[] = [];
  if (query.offset > 0) nav.push(`<a href="${escapeHtml(searchHref(query, Math.max(0, query.offset - query.limit)))}">Previous ${query.limit}</a>`);
  if (last < results.total) nav.push(`<a href="${escapeHtml(searchHref(query, last))}">Next ${query.limit}</a>`);
  const noun = results.total === 1 ? 'package' : 'packages';
  const what = query.q === '' ? noun : `${noun} ${results.total === 1 ? 'matches' : 'match'} <strong>${escapeHtml(query.q)}</strong>`;
  return `<p id="results-count">${results.total} ${what}${results.total > results.packages.length ? ` (${first}–${last} shown)` : ''}.</p>
<table class="results" aria-describedby="results-count">
<thead><tr><th scope="col">Package</th><th scope="col">Version</th><th scope="col">Description</th><th scope="col"><span class="visually-hidden">Add to image</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
${nav.length > 0 ? `<nav class="pages" aria-label="More results">${nav.join(' ')}</nav>` : ''}`;
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #ffffff; --panel: #f4f6f8; --line: #d0d7de; --accent: #1f5fbf; --accent-fg: #ffffff; --bad: #b42318; --good: #1a7f37; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9da7b3; --bg: #0f1318; --panel: #171c23; --line: #30363d; --accent: #6ea8fe; --accent-fg: #0f1318; --bad: #ff7b72; --good: #56d364; } }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
header, main, footer { max-width: 64rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 2rem; }
h1 { margin: 0 0 .25rem; font-size: 2rem; }
h2 { margin: 2rem 0 .75rem; font-size: 1.3rem; }
h3 { margin: 0 0 .25rem; font-size: 1rem; }
.lead { margin: 0; color: var(--muted); max-width: 46rem; }
a { color: var(--accent); }
code, pre, .attr { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; overflow-x: auto; margin: 0; }
section { margin-bottom: 1rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; }
label { font-weight: 600; display: block; margin-bottom: .25rem; }
.row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
input[type=search], select { font: inherit; padding: .45rem .6rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
input[type=search] { flex: 1 1 20rem; min-width: 0; }
button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-fg); cursor: pointer; }
button.secondary, button.add, button.remove, button.copy { background: transparent; color: var(--accent); }
button:disabled { opacity: .5; cursor: not-allowed; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.hint { color: var(--muted); font-size: .9rem; margin: .35rem 0 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .45rem .5rem; border-bottom: 1px solid var(--line); }
thead th { font-size: .85rem; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 400; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pull-hint { display: block; color: var(--muted); font-size: .8rem; font-family: ui-monospace, monospace; }
.js .pull-hint { display: none; }
.pages { margin-top: .75rem; display: flex; gap: 1rem; }
.error { color: var(--bad); }
.ok { color: var(--good); }
.chosen { list-style: none; padding: 0; margin: 0 0 1rem; display: flex; flex-wrap: wrap; gap: .5rem; }
.chosen li { display: flex; align-items: center; gap: .35rem; border: 1px solid var(--line); border-radius: 999px; padding: .15rem .25rem .15rem .75rem; background: var(--bg); }
.chosen button { padding: .1rem .5rem; border: 0; }
.commands { display: grid; gap: .75rem; margin: 1rem 0; }
.command { display: grid; grid-template-columns: 4.5rem 1fr auto; gap: .5rem; align-items: center; }
.command .client { font-weight: 600; }
@media (max-width: 40rem) { .command { grid-template-columns: 1fr auto; } .command pre { grid-column: 1 / -1; grid-row: 2; } }
progress { width: 100%; height: 1rem; }
.log { max-height: 16rem; overflow-y: auto; font-size: .8rem; white-space: pre-wrap; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; }
.failure { border-left: 3px solid var(--bad); padding: .25rem 0 .25rem .75rem; margin-bottom: .75rem; }
.failure pre { font-size: .8rem; max-height: 12rem; margin-bottom: .5rem; }
#result h3 { margin-top: 1.25rem; }
#layers code { white-space: pre-wrap; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: .9rem; padding-bottom: 2rem; margin-top: 2rem; }
[hidden] { display: none !important; }
`;

export function renderPage(input: PageInput): string {
  const host = escapeHtml(input.host);
  const q = input.query?.q ?? '';
  const examples = pullCommands(input.host, 'shell/hello', 'latest', input.insecure)
    .map((c) => escapeHtml(c.command))
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${q === '' ? '' : `${escapeHtml(q)} – `}nixery-edge: container images built from their names</title>
<style>${STYLE}</style>
</head>
<body>
<a class="skip" href="#q">Skip to package search</a>
<header>
<h1>nixery-edge</h1>
<p class="lead">A container registry that builds images on demand with <a href="https://nixos.org/">Nix</a>.
The name of an image is the list of packages in it: ask for <code>${host}/curl/jq</code> and you get an image holding
<code>curl</code> and <code>jq</code>, built the first time anyone asks and served from the cache after that.</p>
</header>
<main>
<section aria-labelledby="pull-heading">
<h2 id="pull-heading">Pull</h2>
<pre><code>${examples}</code></pre>
<ul>
<li>Separate packages with <code>/</code>; their order does not matter. Names are lower case; <code>python3packages.requests</code> names a nested package.</li>
<li><code>shell</code> adds an interactive base: bash, coreutils, nano and friends.</li>
<li>Start the name with <code>arm64/</code> for an ARM image (the default is <code>amd64</code>).</li>
<li>Images are read-only: there is nothing to push. The pull API lives under <a href="/v2/"><code>/v2/</code></a>.</li>
</ul>
</section>

<section aria-labelledby="search-heading">
<h2 id="search-heading">Find packages</h2>
<form id="search-form" method="get" action="/#results" role="search">
<label for="q">Package name or description</label>
<div class="row">
<input id="q" name="q" type="search" value="${escapeHtml(q)}" maxlength="${API_LIMITS.maxQueryLength}" autocomplete="off" spellcheck="false" aria-describedby="q-hint">
<button type="submit">Search</button>
</div>
<p id="q-hint" class="hint">Searches the attribute paths, names and descriptions of the packages this registry serves.</p>
</form>
<div id="results" aria-live="polite">
${renderResults(input)}
</div>
</section>

<section id="compose" aria-labelledby="compose-heading" hidden>
<h2 id="compose-heading">Your image</h2>
<div class="panel">
<p id="compose-empty">Search for packages and press <strong>Add</strong> to put them in an image.</p>
<ul id="chosen" class="chosen" aria-label="Packages in the image"></ul>
<div class="row">
<label for="arch" style="margin:0">Architecture</label>
<select id="arch"><option value="amd64">amd64</option><option value="arm64">arm64</option></select>
</div>
<div id="commands" class="commands" hidden></div>
<div class="row">
<button id="build" type="button" disabled>Build now</button>
<span id="copy-status" class="hint" role="status" aria-live="polite"></span>
</div>
<div id="progress" hidden>
<p id="progress-text" role="status" aria-live="polite"></p>
<progress id="progress-bar" max="1" value="0" aria-label="Layers written"></progress>
<p id="progress-bytes" class="hint"></p>
<details id="log-details" open><summary>Nix's progress</summary><pre id="log" class="log" tabindex="0" aria-label="Nix's progress lines"></pre></details>
</div>
<div id="result" aria-live="polite"></div>
</div>
</section>

<noscript><p>With JavaScript on, this page also composes an image from the search results, builds it and shows it build. Without it, name the packages in a pull as above.</p></noscript>

<section id="failures-section" aria-labelledby="failures-heading" hidden>
<h2 id="failures-heading">Recent build failures</h2>
<div id="failures"></div>
</section>
</main>
<footer>
<p>JSON API: <code>/api/search?q=</code>, <code>POST /api/builds</code>, <code>/api/builds/&lt;name&gt;:&lt;tag&gt;/events</code>, <a href="/api/failures"><code>/api/failures</code></a>.</p>
</footer>
<script type="module" src="${CLIENT_SCRIPT_PATH}"></script>
</body>
</html>
`;
}
