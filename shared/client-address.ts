// Who a client is, for shares and rate limits: its address, with an IPv6
// address cut to its /64 (one subscriber usually gets a whole /64, so each of
// its 2^64 addresses must not count as a stranger of its own). Anything that
// is not an address reads as null, so a forged header cannot make up keys
// of any shape.

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function clientKey(address: string | null | undefined): string | null {
  if (address === null || address === undefined) return null;
  const text = address.trim().replace(/^::ffff:(?=\d+\.)/i, '');
  const v4 = IPV4.exec(text);
  if (v4) return v4.slice(1).every((part) => Number(part) <= 255) ? v4.slice(1).map(Number).join('.') : null;
  return ipv6Prefix(text);
}

/** The first four groups of an IPv6 address, expanded and lower-case, as `a:b:c:d::/64`. */
function ipv6Prefix(text: string): string | null {
  if (text.length > 45 || !/^[0-9a-fA-F:.%]+$/.test(text)) return null;
  const bare = text.split('%')[0]!;
  const halves = bare.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  // An embedded IPv4 tail counts as two groups; only the first four groups matter.
  const tailLength = tail.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const missing = 8 - head.length - tailLength;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const first = all.slice(0, 4);
  if (!first.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return `${first.map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}
