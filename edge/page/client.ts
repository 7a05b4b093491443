// The page's script, served by the Worker at CLIENT_SCRIPT_PATH. Plain
// JavaScript, no framework and no build step: it enhances the server-rendered
// page (html.ts) in place. It searches without reloading (GET /api/search),
// keeps the chosen packages (and the search) in the address, shows the pull
// commands with copy buttons, starts a build (POST /api/builds), follows its
// server-sent events and shows the built image's layers, and lists the
// latest failures (GET /api/failures).
//
// Kept as a string because the Worker is one bundled module (wrangler would
// upload a separate module for a text import, which the local runner does
// not load). So: no backticks and no dollar-brace in the script.
// test/unit/page.test.ts compiles it; test/e2e/page.test.ts runs it in Chromium.

export const CLIENT_SCRIPT = String.raw`
const $ = (id) => document.getElementById(id);
const host = location.host;
const insecure = location.protocol === 'http:';
const state = { packages: [], arch: 'amd64', tag: 'latest', source: null, lastQuery: null };

document.documentElement.classList.add('js');
$('compose').hidden = false;

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    const first = body.errors && body.errors[0];
    if (first) return first.message;
  } catch (e) { /* not JSON */ }
  return 'the registry answered ' + response.status;
}

function imageName() {
  const names = state.packages.map((p) => p.toLowerCase());
  return (state.arch === 'arm64' ? ['arm64'] : []).concat(names).join('/');
}

function pullCommands(name, tag) {
  const local = name.split('/').pop();
  return [
    ['docker', 'docker pull ' + host + '/' + name + ':' + tag],
    ['podman', 'podman pull ' + (insecure ? '--tls-verify=false ' : '') + host + '/' + name + ':' + tag],
    ['skopeo', 'skopeo copy ' + (insecure ? '--src-tls-verify=false ' : '') + 'docker://' + host + '/' + name + ':' + tag + ' oci:' + local + ':' + tag],
  ];
}

function saveToAddress() {
  const params = new URLSearchParams(location.search);
  if (state.lastQuery !== null) params.set('q', state.lastQuery);
  if (state.packages.length > 0) params.set('packages', state.packages.join(','));
  else params.delete('packages');
  if (state.arch !== 'amd64') params.set('arch', state.arch); else params.delete('arch');
  const query = params.toString();
  history.replaceState(null, '', query === '' ? location.pathname : '?' + query);
}

async function copy(text, label) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    // Clipboard API refused (plain HTTP on another host): copy through a selection.
    const area = el('textarea', { 'aria-hidden': 'true', style: 'position:fixed;opacity:0' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  $('copy-status').textContent = 'Copied the ' + label + ' command.';
}

function renderImage() {
  const list = $('chosen');
  list.replaceChildren(...state.packages.map((p) => el('li', {}, [
    el('code', { text: p }),
    el('button', { type: 'button', class: 'remove', 'aria-label': 'Remove ' + p + ' from the image', text: '×', onclick: () => removePackage(p) }),
  ])));
  const empty = state.packages.length === 0;
  $('compose-empty').hidden = !empty;
  $('build').disabled = empty || state.source !== null;
  const commands = $('commands');
  commands.hidden = empty;
  if (!empty) {
    commands.replaceChildren(...pullCommands(imageName(), state.tag).map(([client, command]) => {
      const id = 'command-' + client;
      return el('div', { class: 'command' }, [
        el('span', { class: 'client', text: client }),
        el('pre', {}, [el('code', { id, text: command })]),
        el('button', { type: 'button', class: 'copy', 'aria-label': 'Copy the ' + client + ' command', text: 'Copy', onclick: () => copy(command, client) }),
      ]);
    }));
  }
  for (const button of document.querySelectorAll('button.add')) {
    const chosen = state.packages.includes(button.dataset.attr);
    button.disabled = chosen;
    button.textContent = chosen ? 'Added' : 'Add';
  }
}

function addPackage(attr) {
  if (state.packages.includes(attr)) return;
  if (state.packages.length >= 20) { $('copy-status').textContent = 'An image built here holds at most 20 packages.'; return; }
  state.packages.push(attr);
  $('result').replaceChildren();
  renderImage();
  saveToAddress();
  $('copy-status').textContent = attr + ' added to the image.';
}

function removePackage(attr) {
  state.packages = state.packages.filter((p) => p !== attr);
  $('result').replaceChildren();
  renderImage();
  saveToAddress();
  $('copy-status').textContent = attr + ' removed from the image.';
  // The button that had focus is gone: keep the keyboard user in the list, or send them back to the search.
  const next = document.querySelector('#chosen button.remove');
  (next || $('q')).focus();
}

function enableAddButtons() {
  for (const button of document.querySelectorAll('button.add')) {
    button.hidden = false;
    button.addEventListener('click', () => addPackage(button.dataset.attr));
  }
  renderImage();
}

function renderResults(query, data) {
  const results = $('results');
  if (data.total === 0) {
    results.replaceChildren(el('p', {}, ['No package matches ', el('strong', { text: query }), '.']));
    return;
  }
  const shown = data.packages.length;
  const noun = data.total === 1 ? 'package' : 'packages';
  const count = el('p', { id: 'results-count' }, [String(data.total) + ' ', query === '' ? noun : noun + (data.total === 1 ? ' matches ' : ' match '), query === '' ? '' : el('strong', { text: query }), data.total > shown ? ' (' + shown + ' shown)' : '', '.']);
  const rows = data.packages.map((p) => el('tr', {}, [
    el('th', { scope: 'row' }, [el('code', { class: 'attr', text: p.attrPath })]),
    el('td', { text: p.version }),
    el('td', { text: p.description }),
    el('td', {}, [el('button', { type: 'button', class: 'add', 'data-attr': p.attrPath, 'aria-label': 'Add ' + p.attrPath + ' to the image', text: 'Add' })]),
  ]));
  const head = el('thead', {}, [el('tr', {}, ['Package', 'Version', 'Description'].map((t) => el('th', { scope: 'col', text: t })).concat([el('th', { scope: 'col' }, [el('span', { class: 'visually-hidden', text: 'Add to image' })])]))]);
  const table = el('table', { class: 'results', 'aria-describedby': 'results-count' }, [head, el('tbody', {}, rows)]);
  results.replaceChildren(count, table);
  enableAddButtons();
}

async function search(query) {
  state.lastQuery = query;
  saveToAddress();
  const results = $('results');
  results.setAttribute('aria-busy', 'true');
  try {
    const response = await fetch('/api/search?' + new URLSearchParams({ q: query, limit: '50' }));
    if (!response.ok) {
      results.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Search failed: ' + (await errorMessage(response)) }));
      return;
    }
    renderResults(query, await response.json());
  } catch (e) {
    results.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Search failed: the registry cannot be reached.' }));
  } finally {
    results.removeAttribute('aria-busy');
  }
}

const STEPS = { evaluation: 'Evaluating the packages with Nix…', build: 'Building with Nix…', 'closure query': 'Reading the runtime closure…' };

function setProgress(text) { $('progress-text').textContent = text; }

function showSummary(name, tag, summary) {
  const result = $('result');
  if (!summary) { result.replaceChildren(el('p', { class: 'ok', text: 'Built ' + name + ':' + tag + '.' })); return; }
  const rows = summary.layers.map((layer, i) => el('tr', {}, [
    el('td', { class: 'num', text: String(i + 1) }),
    el('td', { class: 'num', text: formatBytes(layer.size) }),
    // Store path hashes say nothing to a reader; the digest is there on hover.
    el('td', {}, [el('code', { title: layer.digest, text: (layer.description || layer.digest).replace(/\b[0-9a-z]{32}-/g, '') })]),
  ]));
  result.replaceChildren(
    el('h3', { text: 'Built ' + name + ':' + tag }),
    el('p', {}, ['Total size ', el('strong', { id: 'total-size', text: formatBytes(summary.totalBytes) }), ' in ' + summary.layers.length + ' layers; digest ', el('code', { text: summary.digest }), '. Pulling it now needs no build.']),
    el('table', { id: 'layers' }, [
      el('caption', { class: 'visually-hidden', text: 'Layers of the image' }),
      el('thead', {}, [el('tr', {}, [el('th', { scope: 'col', class: 'num', text: 'Layer' }), el('th', { scope: 'col', class: 'num', text: 'Size' }), el('th', { scope: 'col', text: 'Contents' })])]),
      el('tbody', {}, rows),
    ]),
  );
}

function showFailure(error) {
  const detail = error.detail && typeof error.detail === 'object' && error.detail.nix ? String(error.detail.nix) : '';
  $('result').replaceChildren(
    el('p', { class: 'error', role: 'alert', text: 'The build failed: ' + error.message }),
    ...(detail ? [el('pre', { class: 'log', tabindex: '0', 'aria-label': "Nix's output", text: detail })] : []),
  );
}

function finish() {
  if (state.source) state.source.close();
  state.source = null;
  renderImage();
}

async function build() {
  const name = imageName();
  const tag = state.tag;
  $('result').replaceChildren();
  $('log').textContent = '';
  $('progress').hidden = false;
  // Indeterminate until the layers are known: Nix does not say how long it will take.
  $('progress-bar').removeAttribute('value');
  $('progress-bar').max = 1;
  $('progress-bytes').textContent = '';
  setProgress('Starting the build of ' + name + ':' + tag + '…');
  $('build').disabled = true;
  let response;
  try {
    response = await fetch('/api/builds', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ packages: state.packages, arch: state.arch, tag }) });
  } catch (e) {
    setProgress('The registry cannot be reached.');
    renderImage();
    return;
  }
  if (!response.ok) {
    const message = await errorMessage(response);
    setProgress('');
    $('progress').hidden = true;
    $('result').replaceChildren(el('p', { class: 'error', role: 'alert', text: message }));
    renderImage();
    return;
  }
  const started = await response.json();
  const source = new EventSource(started.events);
  state.source = source;
  const on = (type, handle) => source.addEventListener(type, (event) => handle(JSON.parse(event.data)));
  on('step', (e) => setProgress(STEPS[e.step] || e.step));
  on('nix', (e) => {
    const log = $('log');
    log.textContent += e.line + '\n';
    log.scrollTop = log.scrollHeight;
  });
  on('layers', (e) => { $('progress-bar').max = e.total; setProgress('Writing ' + e.total + ' layers…'); });
  on('layer', (e) => {
    $('progress-bar').max = e.total;
    $('progress-bar').value = e.done;
    setProgress('Layers: ' + e.done + ' of ' + e.total + ' in storage.');
    $('progress-bytes').textContent = formatBytes(e.bytesWritten) + ' written by this build.';
  });
  on('done', (e) => {
    setProgress('Done: ' + e.name + ':' + e.tag + ' is ready to pull.');
    $('progress-bar').value = $('progress-bar').max;
    showSummary(e.name, e.tag, e.summary);
    finish();
  });
  on('failed', (e) => {
    setProgress('Failed.');
    $('progress-bar').value = 0;
    showFailure(e.error);
    finish();
    loadFailures();
  });
  on('idle', () => { setProgress('No build of this image is running.'); finish(); });
  source.onerror = () => {
    // The stream ended without an outcome (the origin restarted): say so rather than retry forever.
    if (state.source === source) { setProgress('Lost the connection to the build.'); finish(); }
  };
}

async function loadFailures() {
  try {
    const response = await fetch('/api/failures');
    if (!response.ok) return;
    const { failures } = await response.json();
    const section = $('failures-section');
    section.hidden = failures.length === 0;
    $('failures').replaceChildren(...failures.map((f) => {
      const detail = f.error.detail && f.error.detail.nix ? String(f.error.detail.nix) : '';
      // Nix puts the reason at the end of what it printed.
      const last = detail.split('\n').filter((line) => line.trim() !== '').slice(-3).join('\n');
      return el('div', { class: 'failure' }, [
        el('p', {}, [el('code', { text: f.image }), ' ', el('time', { datetime: f.at, text: new Date(f.at).toLocaleString() })]),
        el('p', { text: f.error.message }),
        ...(last ? [el('pre', { text: last })] : []),
        ...(detail ? [el('details', {}, [el('summary', { text: "All of Nix's output" }), el('pre', { text: detail })])] : []),
      ]);
    }));
  } catch (e) { /* failures are extra: the page works without them */ }
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  search($('q').value.trim());
});
$('arch').addEventListener('change', () => { state.arch = $('arch').value; $('result').replaceChildren(); renderImage(); saveToAddress(); });
$('build').addEventListener('click', build);

const initial = new URLSearchParams(location.search);
if (initial.has('q')) state.lastQuery = initial.get('q');
for (const p of (initial.get('packages') || '').split(',')) if (/^[A-Za-z0-9_.+-]+$/.test(p) && !state.packages.includes(p)) state.packages.push(p);
if (initial.get('arch') === 'arm64') { state.arch = 'arm64'; $('arch').value = 'arm64'; }
enableAddButtons();
loadFailures();
`;

/** FNV-1a of the script: its URL changes with it, so browsers may keep it forever. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

export const CLIENT_SCRIPT_VERSION = fnv1a(CLIENT_SCRIPT);
export const CLIENT_SCRIPT_PATH = `/static/page.js?v=${CLIENT_SCRIPT_VERSION}`;
