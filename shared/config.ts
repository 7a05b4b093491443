// Reading configuration values, shared by the origin (process.env) and the
// Worker (its vars and secrets): both read once and stop on the first bad
// value with one line naming the variable.

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** A setting's text, trimmed; unset, empty and blank all read as undefined. */
export function configText(env: object, name: string): string | undefined {
  // `object`, so typed binding interfaces (the Worker's Env) and process.env both fit.
  const value = (env as Record<string, unknown>)[name];
  if (value === undefined || value === null) return undefined;
  const trimmed = String(value).trim();
  return trimmed === '' ? undefined : trimmed;
}

/** A whole number within [min, max], or the fallback when unset. */
export function configInteger(env: object, name: string, fallback: number, min: number, max: number): number {
  const raw = configText(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/**
 * The GCS endpoint both sides talk to and sign URLs for: GCS_API_ENDPOINT,
 * or STORAGE_EMULATOR_HOST (the convention of Google's client libraries:
 * `host:port` or a URL). Honoured for every call, signing included, so
 * object calls and signed blob URLs can never point at different servers;
 * both set to different servers stops start-up. Null: Google's own.
 * Only scheme, host and port are kept, as the client library does.
 */
export function gcsEndpoint(env: object): string | null {
  const endpoint = configText(env, 'GCS_API_ENDPOINT');
  const emulator = configText(env, 'STORAGE_EMULATOR_HOST');
  const parse = (name: string, raw: string): string => {
    try {
      const parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
      return parsed.origin;
    } catch {
      throw new ConfigError(name, `must be an http(s) URL${name === 'STORAGE_EMULATOR_HOST' ? ' or host:port' : ''}, got ${JSON.stringify(raw)}`);
    }
  };
  const fromEndpoint = endpoint === undefined ? null : parse('GCS_API_ENDPOINT', endpoint);
  const fromEmulator = emulator === undefined ? null : parse('STORAGE_EMULATOR_HOST', emulator);
  if (fromEndpoint !== null && fromEmulator !== null && fromEndpoint !== fromEmulator) {
    throw new ConfigError('STORAGE_EMULATOR_HOST', `points at ${fromEmulator} but GCS_API_ENDPOINT at ${fromEndpoint}: object calls and signed URLs would go to different servers; set one of them`);
  }
  return fromEndpoint ?? fromEmulator;
}
