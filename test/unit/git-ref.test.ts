// The git ref-name grammar, on its own and against git itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { MAX_REF_LENGTH, isCommitHash, refNameProblem } from '../../origin/sources/git-ref.ts';

const VALID = ['main', 'latest', 'v1.0.2', 'release-24.05', 'feature/login', 'a./b', 'deep/er/branch', 'UPPER_case', 'x@y', 'a.b.c', 'ünïcode', 'HEAD'];

const INVALID: [string, RegExp][] = [
  ['', /empty/],
  ['--upload-pack=touch /tmp/pwned', /begins with "-"/],
  ['-b', /begins with "-"/],
  ['../etc/passwd', /"\.\."|begins with "\."/],
  ['a..b', /"\.\."/],
  ['with space', /" "/],
  ['tab\there', /control/],
  ['new\nline', /control/],
  ['del\x7f', /control/],
  ['main@{1}', /"@\{"/],
  ['@', /"@"/],
  ['main.lock', /\.lock/],
  ['refs/heads.lock/x', /\.lock/],
  ['.hidden', /beginning with "\."/],
  ['dir/.hidden', /beginning with "\."/],
  ['tilde~1', /"~"/],
  ['caret^', /"\^"/],
  ['colon:x', /":"/],
  ['question?', /"\?"/],
  ['star*', /"\*"/],
  ['bracket[', /"\["/],
  ['back\\slash', /"\\\\"/],
  ['/leading', /begins or ends with "\/"/],
  ['trailing/', /begins or ends with "\/"/],
  ['double//slash', /"\/\/"/],
  ['dot.', /ends with "\."/],
  ['x'.repeat(MAX_REF_LENGTH + 1), /longer than/],
];

test('ordinary branch and tag names are valid ref names', () => {
  for (const name of VALID) assert.equal(refNameProblem(name), null, name);
});

test('each hostile or malformed name is refused with the rule it breaks', () => {
  for (const [name, reason] of INVALID) {
    const problem = refNameProblem(name);
    assert.ok(problem !== null, `${JSON.stringify(name)} was accepted`);
    assert.match(problem, reason, JSON.stringify(name));
  }
});

test('the grammar agrees with git check-ref-format on every name where only git rules apply', async () => {
  // Our two extra rules (no leading "-", a length limit) are stricter than git on purpose.
  const cases = [...VALID, ...INVALID.map(([name]) => name)].filter((name) => !name.startsWith('-') && name.length <= MAX_REF_LENGTH);
  for (const name of cases) {
    const git = await execa('git', ['check-ref-format', '--allow-onelevel', name], { reject: false });
    assert.equal(refNameProblem(name) === null, git.exitCode === 0, `${JSON.stringify(name)}: git says ${git.exitCode === 0 ? 'valid' : 'invalid'}`);
  }
});

test('only a full 40-digit hex string is a commit hash', () => {
  assert.ok(isCommitHash('0123456789abcdef0123456789abcdef01234567'));
  assert.ok(isCommitHash('0123456789ABCDEF0123456789ABCDEF01234567'));
  assert.ok(!isCommitHash('0123456789abcdef0123456789abcdef0123456'));
  assert.ok(!isCommitHash('0123456789abcdef0123456789abcdef012345678'));
  assert.ok(!isCommitHash('g123456789abcdef0123456789abcdef01234567'));
  assert.ok(!isCommitHash('v1.0'));
});
