// A package set in a git repository (NIXERY_PKGS_REPO). The tag is a git
// ref: a 40-hex tag is a commit (pinned, so its image is cacheable forever
// without asking git anything); `latest` is the repository's default branch
// (HEAD); any other tag is a tag or branch name, resolved with
// `git ls-remote` to the commit it points at now and remembered for a short
// time. Nix then fetches exactly that commit, so the cache key (the commit)
// and what is built always agree.
import { execa, type ExecaError } from 'execa';
import { errors, RegistryError } from '../../shared/errors.ts';
import { isTag } from '../../shared/names.ts';
import type { NixSource } from '../nix/nix.ts';
import { isCommitHash, refNameProblem } from './git-ref.ts';
import { redactCredentials } from './redact.ts';
import type { PackageSource, ResolvedSource } from './source.ts';
import { ungated, type TagWorkGate } from '../nix/tag-work-gate.ts';
import { TtlCache } from './ttl-cache.ts';

/** Runs git with these arguments; resolves to stdout, rejects like execa. Injectable for tests. */
export type GitRunner = (args: readonly string[], options: { timeoutSeconds: number }) => Promise<string>;

export interface GitSourceOptions {
  repo: string;
  /** Seconds a resolved branch, tag or HEAD is trusted before git is asked again. */
  ttlSeconds: number;
  /** Seconds `git ls-remote` may take. */
  timeoutSeconds: number;
  runGit?: GitRunner;
  /** Runs each ref's `git ls-remote` (the origin's evaluation queue and failure memory); at once if absent. */
  gate?: TagWorkGate;
}

const runGitWithExeca: GitRunner = async (args, options) => {
  const result = await execa('git', args, {
    timeout: options.timeoutSeconds * 1000,
    forceKillAfterDelay: 2000,
    // Credentials come from the environment (helpers, SSH agent, netrc); a prompt would hang the request.
    env: { GIT_TERMINAL_PROMPT: '0' },
    stdin: 'ignore',
  });
  return result.stdout;
};

/** A repository with more refs lists its first ones: the tag list stays small. */
const MAX_LISTED_TAGS = 10_000;

interface Target {
  rev: string;
  /** The full ref the commit was found on, so Nix fetches that ref (it only looks at one ref otherwise). */
  ref: string | null;
}

export class GitSource implements PackageSource {
  readonly repo: string;
  readonly description: string;
  private readonly timeoutSeconds: number;
  private readonly runGit: GitRunner;
  private readonly gate: TagWorkGate;
  private readonly refs: TtlCache<Target>;
  private readonly listing: TtlCache<readonly string[]>;

  constructor(options: GitSourceOptions) {
    this.repo = options.repo;
    this.description = `git ${redactCredentials(options.repo)}`;
    this.timeoutSeconds = options.timeoutSeconds;
    this.runGit = options.runGit ?? runGitWithExeca;
    this.gate = options.gate ?? ungated;
    this.refs = new TtlCache<Target>(options.ttlSeconds);
    this.listing = new TtlCache<readonly string[]>(options.ttlSeconds, { capacity: 1 });
  }

  /**
   * `latest`, then every branch and tag whose name is also a registry tag
   * (no `/`, at most 128 characters): one `git ls-remote`, remembered for
   * the ref TTL like a resolved ref, and run through the gate like one (a
   * failure is then remembered: a repository that cannot be read is asked
   * once per FAILURE_TTL, not on every tag list).
   */
  async listTags(): Promise<readonly string[]> {
    return this.listing.get('refs', () =>
      // Keys no two things share: a tag never holds a space, so no tag's key is this one.
      this.gate('git list of refs', async () => {
        const listed = await this.lsRemote(['--heads', '--tags'], [], 'latest');
        const names = new Set<string>(['latest']);
        for (const { name } of listed) {
          // A branch or tag name that is also a registry tag: one path segment, the tag grammar.
          const short = /^refs\/(?:heads|tags)\/([^/]+)$/.exec(name)?.[1];
          if (short !== undefined && short !== 'latest' && isTag(short) && refNameProblem(short) === null) names.add(short);
          if (names.size >= MAX_LISTED_TAGS) break;
        }
        return [...names];
      }),
    );
  }

  async resolve(tag: string): Promise<ResolvedSource> {
    const problem = refNameProblem(tag);
    if (problem !== null) {
      throw errors.manifestUnknown(`tag ${JSON.stringify(tag.slice(0, 140))} is not a git ref name: it ${problem}`, { tag: tag.slice(0, 140) });
    }
    const target = isCommitHash(tag)
      ? { rev: tag.toLowerCase(), ref: null }
      : await this.refs.get(tag, () => this.gate(`git ref ${tag}`, () => (tag === 'latest' ? this.resolveHead() : this.resolveRef(tag))));
    const nix: NixSource = target.ref === null
      ? { type: 'git', url: this.repo, rev: target.rev, allRefs: true }
      : { type: 'git', url: this.repo, rev: target.rev, ref: target.ref };
    return { nix, cacheKey: `git ${this.repo} ${target.rev}` };
  }

  private async resolveHead(): Promise<Target> {
    const listed = await this.lsRemote(['--symref'], ['HEAD'], 'latest');
    const symref = listed.find((line) => line.name === 'HEAD' && line.value.startsWith('ref: '));
    const head = listed.find((line) => line.name === 'HEAD' && isCommitHash(line.value));
    if (!head) throw errors.manifestUnknown(`tag "latest": the repository has no default branch (HEAD)`, { tag: 'latest' });
    return { rev: head.value.toLowerCase(), ref: symref ? symref.value.slice('ref: '.length) : null };
  }

  private async resolveRef(tag: string): Promise<Target> {
    const tagRef = `refs/tags/${tag}`;
    const branchRef = `refs/heads/${tag}`;
    const listed = await this.lsRemote([], [tagRef, `${tagRef}^{}`, branchRef], tag);
    const commitOf = (name: string) => listed.find((line) => line.name === name)?.value.toLowerCase();
    // Git's own order for a short name: a tag wins over a branch. An annotated tag is peeled to its commit.
    const tagCommit = commitOf(`${tagRef}^{}`) ?? commitOf(tagRef);
    if (tagCommit !== undefined) return { rev: tagCommit, ref: tagRef };
    const branchCommit = commitOf(branchRef);
    if (branchCommit !== undefined) return { rev: branchCommit, ref: branchRef };
    throw errors.manifestUnknown(`tag ${JSON.stringify(tag)}: no branch or tag of that name in the package repository`, { tag });
  }

  private async lsRemote(options: string[], refs: string[], tag: string): Promise<{ value: string; name: string }[]> {
    let stdout: string;
    try {
      // `--` ends git's options: the repository and the refs (the client's tag) are never read as options.
      stdout = await this.runGit(['ls-remote', ...options, '--', this.repo, ...refs], { timeoutSeconds: this.timeoutSeconds });
    } catch (err) {
      throw this.gitFailure(err, tag);
    }
    return stdout
      .split('\n')
      .map((line) => line.split('\t'))
      .filter((fields): fields is [string, string] => fields.length === 2)
      .map(([value, name]) => ({ value, name }));
  }

  private gitFailure(err: unknown, tag: string): RegistryError {
    const e = err as Partial<ExecaError>;
    if (e.code === 'ENOENT') return errors.internal('git is not installed or not on PATH');
    const stderr = redactCredentials(typeof e.stderr === 'string' ? e.stderr.trim() : '');
    const reason = e.timedOut
      ? `git ls-remote timed out after ${this.timeoutSeconds} s`
      : stderr.split('\n').filter((line) => /^(fatal|error):/i.test(line)).join(' ') || stderr || `git ls-remote failed with exit code ${e.exitCode ?? 'unknown'}`;
    return errors.manifestUnknown(`tag ${JSON.stringify(tag)}: cannot read the package repository: ${reason}`, { tag, git: stderr.slice(-4000) });
  }
}
