// The grammar of git reference names (`git check-ref-format`), as a pure
// function, so a tag is judged before any git or Nix process sees it. Image
// tags already follow the distribution grammar, which is stricter in most
// ways; this is the source's own guard, and it also speaks git's language in
// the error a client reads.

/** Longer names are refused before git is asked anything: no ref a human types is this long. */
export const MAX_REF_LENGTH = 255;

export { isCommitHash } from '../../shared/names.ts';

/**
 * Why `name` is not a valid git reference name, or null when it is. Follows
 * `git check-ref-format --allow-onelevel`, plus two rules of our own: no
 * leading `-` (as `--branch` demands; a value that reads like an option is
 * refused even though it only ever travels after `--`) and a length limit.
 */
export function refNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_REF_LENGTH) return `is longer than ${MAX_REF_LENGTH} characters`;
  if (name.startsWith('-')) return 'begins with "-"';
  if (name === '@') return 'is "@"';
  for (const char of name) {
    const code = char.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return 'contains a control character';
    if (' ~^:?*[\\'.includes(char)) return `contains ${JSON.stringify(char)}`;
  }
  if (name.includes('..')) return 'contains ".."';
  if (name.includes('@{')) return 'contains "@{"';
  if (name.startsWith('/') || name.endsWith('/')) return 'begins or ends with "/"';
  if (name.includes('//')) return 'contains "//"';
  if (name.endsWith('.')) return 'ends with "."';
  for (const component of name.split('/')) {
    if (component.startsWith('.')) return `has a component beginning with "." (${JSON.stringify(component)})`;
    if (component.endsWith('.lock')) return `has a component ending with ".lock" (${JSON.stringify(component)})`;
  }
  return null;
}
