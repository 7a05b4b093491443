// Renders a Kustomize directory the way `kustomize build` would, for the
// subset of Kustomize that deploy/kubernetes uses, so the tests can validate
// exactly what an operator would apply (kustomize itself is not installed
// here). Anything else in a kustomization.yaml is refused, so a new feature
// in the manifests cannot be silently ignored by the tests.
//
// Supported: resources (files and directories), namespace, images (newName,
// newTag), patches (strategic merge from a file), secretGenerator (files and
// literals, with the content-hash name suffix and the references to it
// rewritten).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

// Manifests are untyped JSON-like trees until the schema validator has had its say.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Resource = { [key: string]: Json };

export interface RenderOptions {
  /** Reads a file named by a generator; by default the file itself. */
  readGeneratorFile?: (path: string) => string;
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches', 'secretGenerator']);
/** Kinds that live outside namespaces, among those these manifests use. */
const CLUSTER_SCOPED = new Set(['Namespace']);

const isObject = (value: Json | undefined): value is { [key: string]: Json } => typeof value === 'object' && value !== null && !Array.isArray(value);

export function parseYamlFile(path: string): Resource[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const out: Resource[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJSON() as Json;
    if (value === null) continue;
    if (!isObject(value)) throw new Error(`${path}: a document is not a mapping`);
    out.push(value);
  }
  return out;
}

export function readKustomization(dir: string): Resource {
  const [kustomization] = parseYamlFile(join(dir, 'kustomization.yaml'));
  if (!kustomization) throw new Error(`${dir}/kustomization.yaml is empty`);
  for (const key of Object.keys(kustomization)) {
    if (!SUPPORTED.has(key)) throw new Error(`${dir}/kustomization.yaml uses "${key}", which test/support/kustomize.ts does not render`);
  }
  return kustomization;
}

const strings = (value: Json | undefined, what: string): string[] => {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`${what} must be a list of strings`);
  return value as string[];
};

const objects = (value: Json | undefined, what: string): { [key: string]: Json }[] => {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isObject)) throw new Error(`${what} must be a list of mappings`);
  return value as { [key: string]: Json }[];
};

const nameOf = (r: Resource): string => (isObject(r.metadata) && typeof r.metadata.name === 'string' ? r.metadata.name : '');

/**
 * Strategic merge as Kubernetes does it for these manifests: mappings merge
 * key by key, lists of named items (containers, env, volumes, ports) merge by
 * name, other lists are replaced, and null deletes a key.
 */
export function strategicMerge(base: Json, patch: Json): Json {
  if (isObject(base) && isObject(patch)) {
    const out: { [key: string]: Json } = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key]!, value) : value;
    }
    return out;
  }
  if (Array.isArray(base) && Array.isArray(patch) && [...base, ...patch].every((item) => isObject(item) && typeof item.name === 'string')) {
    const out = base.map((item) => {
      const replacement = patch.find((p) => isObject(p) && isObject(item) && p.name === item.name);
      return replacement === undefined ? item : strategicMerge(item, replacement);
    });
    for (const item of patch) if (!base.some((b) => isObject(b) && isObject(item) && b.name === item.name)) out.push(item);
    return out;
  }
  return patch;
}

/** Every container list of a workload (Deployment's pod template). */
function podContainers(r: Resource): { [key: string]: Json }[] {
  const spec = isObject(r.spec) && isObject(r.spec.template) && isObject(r.spec.template.spec) ? r.spec.template.spec : null;
  if (!spec) return [];
  return [...objects(spec.containers, 'containers'), ...objects(spec.initContainers, 'initContainers')];
}

function imageName(image: string): string {
  const at = image.indexOf('@');
  const withoutDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = withoutDigest.lastIndexOf(':');
  return colon > withoutDigest.lastIndexOf('/') ? withoutDigest.slice(0, colon) : withoutDigest;
}

/** Kustomize's suffix is a hash of the Secret's content; its exact encoding does not matter here. */
function contentHash(data: { [key: string]: Json }): string {
  return createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 10);
}

/** Points every reference to a Secret named `from` at `to` (env, envFrom, volumes). */
function renameSecretReferences(resource: Json, from: string, to: string): Json {
  if (Array.isArray(resource)) return resource.map((item) => renameSecretReferences(item, from, to));
  if (!isObject(resource)) return resource;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(resource)) out[key] = renameSecretReferences(value, from, to);
  if (out.secretName === from) out.secretName = to;
  for (const ref of ['secretKeyRef', 'secretRef']) {
    const r = out[ref];
    if (isObject(r) && r.name === from) out[ref] = { ...r, name: to };
  }
  return out;
}

export function renderKustomization(dir: string, options: RenderOptions = {}): Resource[] {
  const root = resolve(dir);
  const k = readKustomization(root);
  const readFile = options.readGeneratorFile ?? ((path: string) => readFileSync(path, 'utf8'));

  let resources: Resource[] = [];
  for (const entry of strings(k.resources, 'resources')) {
    const path = join(root, entry);
    if (!existsSync(path)) throw new Error(`${root}/kustomization.yaml lists ${entry}, which does not exist`);
    resources.push(...(statSync(path).isDirectory() ? renderKustomization(path, options) : parseYamlFile(path)));
  }

  for (const generator of objects(k.secretGenerator, 'secretGenerator')) {
    const name = String(generator.name);
    const data: { [key: string]: Json } = {};
    for (const file of strings(generator.files, 'secretGenerator.files')) {
      const [key, relative] = file.includes('=') ? (file.split('=', 2) as [string, string]) : [file.split('/').pop()!, file];
      data[key] = Buffer.from(readFile(join(root, relative))).toString('base64');
    }
    for (const literal of strings(generator.literals, 'secretGenerator.literals')) {
      const [key, value] = literal.split('=', 2) as [string, string];
      data[key] = Buffer.from(value).toString('base64');
    }
    const hashed = `${name}-${contentHash(data)}`;
    resources = resources.map((r) => renameSecretReferences(r, name, hashed) as Resource);
    resources.push({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: hashed }, data });
  }

  for (const patchRef of objects(k.patches, 'patches')) {
    if (typeof patchRef.path !== 'string' || Object.keys(patchRef).length !== 1) throw new Error('only patches of the form { path: file } are rendered');
    for (const patch of parseYamlFile(join(root, patchRef.path))) {
      const index = resources.findIndex((r) => r.kind === patch.kind && nameOf(r) === nameOf(patch));
      if (index < 0) throw new Error(`${patchRef.path} patches ${String(patch.kind)}/${nameOf(patch)}, which no resource is`);
      resources[index] = strategicMerge(resources[index]!, patch) as Resource;
    }
  }

  for (const image of objects(k.images, 'images')) {
    for (const r of resources) {
      for (const container of podContainers(r)) {
        if (typeof container.image !== 'string' || imageName(container.image) !== image.name) continue;
        const tag = typeof image.newTag === 'string' ? `:${image.newTag}` : container.image.slice(imageName(container.image).length);
        container.image = `${typeof image.newName === 'string' ? image.newName : image.name}${tag}`;
      }
    }
  }

  if (typeof k.namespace === 'string') {
    for (const r of resources) {
      if (!CLUSTER_SCOPED.has(String(r.kind))) r.metadata = { ...(isObject(r.metadata) ? r.metadata : {}), namespace: k.namespace };
    }
  }
  return resources;
}
