# The fetch step alone: evaluates to the store path of the package set. The
# origin runs it before evaluating an image so that a source that cannot be
# fetched (unknown commit, unreachable URL) is told apart from a package set
# that fails to evaluate or build.
{ source }:

toString (import ./source.nix (builtins.fromJSON source))
