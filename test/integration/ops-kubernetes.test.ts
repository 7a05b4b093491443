// The Kubernetes manifests (deploy/kubernetes): rendered as `kustomize build`
// would (test/support/kustomize.ts), validated against the Kubernetes
// OpenAPI schemas by kubernetes-models, and checked for the promises the
// origin relies on (probes, ports, grace period, configuration names).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { REPO } from '../support/origin.ts';
import { readKustomization, renderKustomization, type Json, type Resource } from '../support/kustomize.ts';

const BASE = join(REPO, 'deploy/kubernetes/base');
const OVERLAY = join(REPO, 'deploy/kubernetes/overlays/example');

/** The example overlay's secret files are kept out of git; their .example files stand in. */
const readSecretOrExample = (path: string) => readFileSync(existsSync(path) ? path : `${path}.example`, 'utf8');

// Each model class validates its own kind; the constructor takes any manifest-shaped object.
type Model = { validate(): void };
const MODELS: Record<string, (data: Resource) => Model> = {
  'apps/v1/Deployment': (d) => new Deployment(d as unknown as ConstructorParameters<typeof Deployment>[0]),
  'v1/ConfigMap': (d) => new ConfigMap(d as unknown as ConstructorParameters<typeof ConfigMap>[0]),
  'v1/Secret': (d) => new Secret(d as unknown as ConstructorParameters<typeof Secret>[0]),
  'v1/Service': (d) => new Service(d as unknown as ConstructorParameters<typeof Service>[0]),
  'v1/ServiceAccount': (d) => new ServiceAccount(d as unknown as ConstructorParameters<typeof ServiceAccount>[0]),
  'v1/Namespace': (d) => new Namespace(d as unknown as ConstructorParameters<typeof Namespace>[0]),
  'policy/v1/PodDisruptionBudget': (d) => new PodDisruptionBudget(d as unknown as ConstructorParameters<typeof PodDisruptionBudget>[0]),
  'autoscaling/v2/HorizontalPodAutoscaler': (d) => new HorizontalPodAutoscaler(d as unknown as ConstructorParameters<typeof HorizontalPodAutoscaler>[0]),
};

function validationErrors(resources: Resource[]): string[] {
  const problems: string[] = [];
  for (const r of resources) {
    const id = `${String(r.apiVersion)}/${String(r.kind)}`;
    const make = MODELS[id];
    if (!make) {
      problems.push(`${id}: no schema model is wired into this test for this kind`);
      continue;
    }
    try {
      make(r).validate();
    } catch (err) {
      problems.push(`${id} ${JSON.stringify((r.metadata as { name?: string } | undefined)?.name)}: ${(err as Error).message}`);
    }
  }
  return problems;
}

// Typed views of the few parts the consistency checks read.
interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
  command?: string[];
}
interface DeploymentView {
  metadata: { name: string; namespace?: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        terminationGracePeriodSeconds: number;
        containers: Container[];
        initContainers: Container[];
        volumes: { name: string; ephemeral?: unknown; secret?: { secretName: string } }[];
      };
    };
  };
}

function find<T>(resources: Resource[], kind: string): T {
  const found = resources.filter((r) => r.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0] as unknown as T;
}

/** Names of the environment variables origin/config.ts reads. */
function variablesTheOriginReads(): Set<string> {
  const source = readFileSync(join(REPO, 'origin/config.ts'), 'utf8');
  return new Set([...source.matchAll(/\b(?:get|integer|url)\(env, '([A-Z0-9_]+)'/g)].map((m) => m[1]!));
}

test('each kustomization lists files that exist, and every manifest in its folder is listed', () => {
  for (const dir of [BASE, OVERLAY]) {
    const k = readKustomization(dir);
    const listed = new Set<string>();
    for (const entry of (k.resources as string[] | undefined) ?? []) {
      assert.ok(existsSync(join(dir, entry)), `${dir}: ${entry} exists`);
      listed.add(entry);
    }
    for (const patch of (k.patches as { path: string }[] | undefined) ?? []) {
      assert.ok(existsSync(join(dir, patch.path)), `${dir}: ${patch.path} exists`);
      listed.add(patch.path);
    }
    const manifests = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    for (const file of manifests) assert.ok(listed.has(file), `${dir}/${file} is listed in its kustomization.yaml`);
  }
});

test('every object of the base and of the example overlay validates against the Kubernetes schemas', () => {
  const base = renderKustomization(BASE);
  const overlay = renderKustomization(OVERLAY, { readGeneratorFile: readSecretOrExample });
  assert.deepEqual(
    base.map((r) => r.kind).sort(),
    ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service', 'ServiceAccount'],
  );
  assert.deepEqual(
    overlay.map((r) => r.kind).sort(),
    ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PodDisruptionBudget', 'Secret', 'Service', 'ServiceAccount'],
  );
  assert.deepEqual(validationErrors(base), []);
  assert.deepEqual(validationErrors(overlay), []);
});

test('the schema validation is live: a Deployment with a malformed field is rejected', () => {
  const deployment = structuredClone(find<Resource>(renderKustomization(BASE), 'Deployment'));
  (deployment.spec as { [key: string]: Json }).replicas = 'three';
  const problems = validationErrors([deployment]);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /replicas/);
});

test('the Deployment probes /readyz and /healthz on the port the Service targets and the origin listens on', () => {
  const resources = renderKustomization(BASE);
  const deployment = find<DeploymentView>(resources, 'Deployment');
  const config = find<{ data: Record<string, string> }>(resources, 'ConfigMap');
  const service = find<{ spec: { selector: Record<string, string>; ports: { targetPort: string | number }[] } }>(resources, 'Service');
  const origin = deployment.spec.template.spec.containers.find((c) => c.name === 'origin')!;
  const http = origin.ports!.find((p) => p.name === 'http')!;

  assert.equal(String(http.containerPort), config.data.PORT);
  assert.deepEqual(origin.readinessProbe?.httpGet, { path: '/readyz', port: 'http' });
  assert.deepEqual(origin.livenessProbe?.httpGet, { path: '/healthz', port: 'http' });
  assert.equal(service.spec.ports[0]!.targetPort, 'http');

  const labels = deployment.spec.template.metadata.labels;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(selects(deployment.spec.selector.matchLabels), 'the Deployment selects its own pods');
  assert.ok(selects(service.spec.selector), 'the Service selects the pods');
  assert.ok(selects(find<{ spec: { selector: { matchLabels: Record<string, string> } } }>(resources, 'PodDisruptionBudget').spec.selector.matchLabels));
  assert.equal(find<{ spec: { scaleTargetRef: { kind: string; name: string } } }>(resources, 'HorizontalPodAutoscaler').spec.scaleTargetRef.name, deployment.metadata.name);
});

test('pods get longer to stop than the origin lets builds run after SIGTERM', () => {
  const resources = renderKustomization(BASE);
  const deployment = find<DeploymentView>(resources, 'Deployment');
  const grace = Number(find<{ data: Record<string, string> }>(resources, 'ConfigMap').data.SHUTDOWN_GRACE_SECONDS);
  assert.ok(grace > 0);
  // The origin needs up to ~15 s to cancel builds and 5 s to close connections after the grace period.
  assert.ok(deployment.spec.template.spec.terminationGracePeriodSeconds >= grace + 20, 'terminationGracePeriodSeconds leaves time to cancel and close');
});

test('the Nix store is a per-pod volume at /nix, seeded from the image by an init container', () => {
  const deployment = find<DeploymentView>(renderKustomization(BASE), 'Deployment');
  const spec = deployment.spec.template.spec;
  const origin = spec.containers.find((c) => c.name === 'origin')!;
  const nixMount = origin.volumeMounts!.find((m) => m.mountPath === '/nix')!;
  const volume = spec.volumes.find((v) => v.name === nixMount.name)!;
  assert.ok(volume.ephemeral, 'the /nix volume is an ephemeral volume');
  const seed = spec.initContainers.find((c) => c.volumeMounts?.some((m) => m.name === nixMount.name))!;
  assert.equal(seed.image, origin.image, 'the seed comes from the same image');
  assert.match(seed.command!.join(' '), /cp -a \/nix\/\. /);
  assert.ok(origin.resources?.requests?.cpu && origin.resources.requests.memory, 'the origin has CPU and memory requests');
});

test('every setting in the ConfigMap and the Deployment is a variable the origin or Nix reads', () => {
  const resources = renderKustomization(OVERLAY, { readGeneratorFile: readSecretOrExample });
  const reads = variablesTheOriginReads();
  // Read by Nix (NIX_CONFIG) or by the processes the origin starts (TMPDIR), not by origin/config.ts.
  const forNix = new Set(['NIX_CONFIG', 'TMPDIR']);
  const config = find<{ data: Record<string, string> }>(resources, 'ConfigMap');
  const origin = find<DeploymentView>(resources, 'Deployment').spec.template.spec.containers.find((c) => c.name === 'origin')!;
  const names = [...Object.keys(config.data), ...(origin.env ?? []).map((e) => e.name)];
  for (const name of names) assert.ok(reads.has(name) || forNix.has(name), `${name} is read by the origin (origin/config.ts) or by Nix`);
  assert.ok(reads.has('SHUTDOWN_GRACE_SECONDS'));
});

test('the example overlay sets the image, the namespace, the Workload Identity account and a generated Secret the pods use', () => {
  const resources = renderKustomization(OVERLAY, { readGeneratorFile: readSecretOrExample });
  const deployment = find<DeploymentView>(resources, 'Deployment');
  const spec = deployment.spec.template.spec;
  for (const c of [...spec.containers, ...spec.initContainers]) assert.equal(c.image, 'europe-west1-docker.pkg.dev/example-project/nixery/origin:0.1.0');
  for (const r of resources) {
    if (r.kind !== 'Namespace') assert.equal((r.metadata as { namespace?: string }).namespace, 'nixery', `${String(r.kind)} is in the namespace`);
  }
  const account = find<{ metadata: { name: string; annotations: Record<string, string> } }>(resources, 'ServiceAccount');
  assert.equal(spec.serviceAccountName, account.metadata.name);
  assert.match(account.metadata.annotations['iam.gke.io/gcp-service-account']!, /@example-project\.iam\.gserviceaccount\.com$/);

  const secret = find<{ metadata: { name: string }; data: Record<string, string> }>(resources, 'Secret');
  assert.match(secret.metadata.name, /^nixery-origin-[0-9a-f]{10}$/);
  assert.deepEqual(Object.keys(secret.data).sort(), ['ORIGIN_SECRET', 'signing-key.pem']);
  const origin = spec.containers.find((c) => c.name === 'origin')!;
  assert.equal(origin.env!.find((e) => e.name === 'ORIGIN_SECRET')!.valueFrom!.secretKeyRef!.name, secret.metadata.name);
  assert.equal(spec.volumes.find((v) => v.secret)!.secret!.secretName, secret.metadata.name);
  assert.equal(origin.resources!.requests!.memory, '3Gi', 'the overlay patch merged into the origin container');
  assert.ok(origin.readinessProbe, 'merging the patch kept the rest of the container');
});
