// Repository URLs may carry credentials (https://user:token@host/...). They
// must not reach logs or a client's error message, whoever printed them (git,
// Nix or us).
const USERINFO = /\b([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/@\s'"]+@/g;

export function redactCredentials(text: string): string {
  return text.replace(USERINFO, '$1***@');
}
