// /metrics: Prometheus text from prom-client, parsed back and checked
// against what the test did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOpsOrigin } from '../support/ops.ts';
import { parsePrometheusText, sampleValue, type Exposition } from '../support/prometheus.ts';

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

test('after a build, a cached pull, a blob and an unknown package, /metrics counts requests by route kind and status, the build, the caches and the bytes written', async () => {
  const origin = await startOpsOrigin();
  try {
    const first = await fetch(`${origin.url}/v2/hello/manifests/latest`);
    assert.equal(first.status, 200);
    const manifest = (await first.json()) as { layers: { digest: string; size: number }[] };
    assert.equal((await (await fetch(`${origin.url}/v2/hello/manifests/latest`)).arrayBuffer()).byteLength > 0, true);
    const blob = await fetch(`${origin.url}/v2/hello/blobs/${manifest.layers[0]!.digest}`);
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();
    assert.equal((await fetch(`${origin.url}/v2/no-such-package/manifests/latest`)).status, 404);

    const m = await scrape(origin.url);
    const requests = (labels: Record<string, string>) => sampleValue(m, 'nixery_origin_http_requests_total', { method: 'GET', ...labels });
    assert.equal(requests({ route: 'manifest', status: '200' }), 2);
    assert.equal(requests({ route: 'manifest', status: '404' }), 1);
    assert.equal(requests({ route: 'blob', status: '200' }), 1);
    assert.equal(sampleValue(m, 'nixery_origin_http_request_duration_seconds_count', { route: 'manifest', method: 'GET', status: '200' }), 2);
    assert.equal(m.types.get('nixery_origin_http_request_duration_seconds'), 'histogram');

    assert.equal(sampleValue(m, 'nixery_origin_build_duration_seconds_count', { outcome: 'built' }), 1);
    assert.ok(sampleValue(m, 'nixery_origin_build_duration_seconds_sum', { outcome: 'built' }) > 0);
    assert.equal(sampleValue(m, 'nixery_origin_build_duration_seconds_bucket', { outcome: 'built', le: '+Inf' }), 1);
    assert.equal(sampleValue(m, 'nixery_origin_builds_total'), 1);
    assert.equal(sampleValue(m, 'nixery_origin_builds_in_flight'), 0);
    // The first pull found no image; the second found the first one's (the unknown package never got that far).
    assert.equal(sampleValue(m, 'nixery_origin_image_cache_misses_total'), 1);
    assert.equal(sampleValue(m, 'nixery_origin_image_cache_hits_total'), 1);
    assert.equal(sampleValue(m, 'nixery_origin_layer_cache_misses_total'), manifest.layers.length);
    assert.equal(sampleValue(m, 'nixery_origin_layer_cache_hits_total'), 0);
    assert.equal(sampleValue(m, 'nixery_origin_layer_bytes_written_total'), manifest.layers.reduce((sum, l) => sum + l.size, 0));
    // Process metrics come from the same registry, under the same prefix.
    assert.ok(sampleValue(m, 'nixery_origin_process_resident_memory_bytes') > 0);
  } finally {
    await origin.cleanup();
  }
});

test('requests are labelled by route kind, never by path or name, so random names add no series', async () => {
  const origin = await startOpsOrigin();
  try {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${origin.url}/v2/random-${randomBytes(4).toString('hex')}/blobs/sha256:${randomBytes(32).toString('hex')}`);
      assert.equal(res.status, 404);
    }
    const m = await scrape(origin.url);
    const series = m.samples.filter((s) => s.name === 'nixery_origin_http_requests_total');
    assert.deepEqual(series, [{ name: 'nixery_origin_http_requests_total', labels: { route: 'blob', method: 'GET', status: '404' }, value: 10 }]);
    for (const s of m.samples) for (const value of Object.values(s.labels)) assert.doesNotMatch(value, /random-|\/v2\//);
  } finally {
    await origin.cleanup();
  }
});
