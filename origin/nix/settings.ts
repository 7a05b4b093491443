// The Nix settings the origin runs with, given to every Nix command it starts
// through NIX_CONFIG, so the origin never depends on a machine-wide nix.conf
// that nothing in this repository wrote.
//
// The origin runs Nix single-user: it is the only client of its store, as
// root on a development machine or as an unprivileged user in its container.
// - `build-users-group =`: Nix run as root defaults this to `nixbld`, and
//   Debian's nix-bin creates neither that group nor /etc/nix/nix.conf, so on
//   a fresh machine every build fails with "the group 'nixbld' specified in
//   'build-users-group' does not exist". Builds run as the origin's user.
// - `sandbox = false`: the sandbox needs namespaces a pod should not be
//   given, and the bundled package set builds from host programs at absolute
//   paths. Remote builders (NIX_CONFIG `builders`) sandbox on their side.
//
// The operator's NIX_CONFIG comes after these lines, and in nix.conf syntax
// a later assignment wins, so any of them can still be overridden.

export const ORIGIN_NIX_SETTINGS: Readonly<Record<string, string>> = {
  'build-users-group': '',
  sandbox: 'false',
};

/** The NIX_CONFIG text for one Nix command: the origin's settings, then the operator's. */
export function originNixConfig(operatorConfig: string | undefined): string {
  const base = Object.entries(ORIGIN_NIX_SETTINGS).map(([name, value]) => `${name} = ${value}`.trimEnd());
  return [...base, ...(operatorConfig?.trim() ? [operatorConfig.trim()] : [])].join('\n');
}

/**
 * The environment for a Nix command started by the origin, or by a test or
 * benchmark that wants to see the store exactly as the origin does.
 */
export function nixEnvironment(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  return { NIX_CONFIG: originNixConfig(env.NIX_CONFIG) };
}
