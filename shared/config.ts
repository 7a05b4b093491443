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
