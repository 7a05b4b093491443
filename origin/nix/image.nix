# Resolves the packages of an image against a package set.
#
# Every argument arrives through --argstr, so nothing a client sends is ever
# parsed as Nix code: `packages` is a JSON list decoded by builtins.fromJSON,
# and `source` is a JSON object describing where the package set comes from.
#
# The result is data: which requested names are unknown (so the origin can
# answer with a precise registry error), and for the others the derivations
# and output paths to build, each package's meta.mainProgram, and whether it
# is one of the base packages every image carries. The origin builds the
# .drv files with nix-build and reads the runtime closure from the store; the
# symlink tree of the image is written by the origin itself, so no derivation
# of ours needs a builder.
{ source, packages, system }:

let
  src = builtins.fromJSON source;
  requested = builtins.fromJSON packages;

  fetched = import ./source.nix src;

  pkgs = import fetched { inherit system; config = { }; overlays = [ ]; };

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = builtins.replaceStrings upper lower;

  # Image names are lower case, attribute names are not: an exact match wins,
  # else the first (in sorted order) attribute equal ignoring case.
  findAttr = set: name:
    if builtins.hasAttr name set then name
    else
      let matches = builtins.filter (n: toLower n == toLower name) (builtins.attrNames set);
      in if matches == [ ] then null else builtins.head (builtins.sort builtins.lessThan matches);

  # Walks an attribute path; tryEval keeps one broken or throwing attribute
  # (nixpkgs' removed aliases throw) from failing the whole image.
  walk = set: path:
    if path == [ ] then { ok = true; value = set; attrPath = [ ]; }
    else
      let
        checked = builtins.tryEval (builtins.isAttrs set);
        name = if checked.success && checked.value then findAttr set (builtins.head path) else null;
        next = if name == null then { success = false; } else builtins.tryEval (set.${name});
        rest = if next.success then walk next.value (builtins.tail path) else { ok = false; };
      in
        if name == null || !next.success || !rest.ok then { ok = false; }
        else rest // { attrPath = [ name ] ++ rest.attrPath; };

  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";

  outputsOf = drv:
    let names = drv.meta.outputsToInstall or [ (builtins.head (drv.outputs or [ "out" ])) ];
    in map (o: drv.${o}) names;

  resolveOne = name:
    let
      found = walk pkgs (builtins.filter builtins.isString (builtins.split "\\." name));
      drv = found.value;
      # deepSeq: a drvPath that throws (unfree, broken, insecure) must throw inside tryEval, not later under --strict.
      outs = builtins.tryEval (let v = map (o: { drv = o.drvPath; out = o.outPath; }) (outputsOf drv); in builtins.deepSeq v v);
    in
      if !found.ok then { inherit name; error = "unknown"; }
      else if !(isDerivation drv) then { inherit name; error = "not-a-package"; }
      else if !outs.success then { inherit name; error = "evaluation-failed"; }
      else { inherit name; attrPath = builtins.concatStringsSep "." found.attrPath; outputs = outs.value; }
        // mainProgramOf drv
        // { base = builtins.elem (builtins.concatStringsSep "." found.attrPath) baseNames; };

  # What `docker run` starts when the image names just this package
  # (nixpkgs' lib.getExe convention: bin/<mainProgram>). A meta that throws
  # or is not a string counts as none.
  mainProgramOf = drv:
    let m = builtins.tryEval (drv.meta.mainProgram or null);
    in if m.success && builtins.isString m.value then { mainProgram = m.value; } else { };

  # Every image carries these, as Nixery's do: CA certificates (so TLS
  # clients can verify, SSL_CERT_FILE points at them) and /etc/protocols and
  # /etc/services. A package set that lacks one (a small custom set) builds
  # its images without it rather than failing every image.
  baseNames = [ "cacert" "iana-etc" ];

  named = map resolveOne requested;
  namedAttrs = map (r: r.attrPath) (builtins.filter (r: r ? attrPath) named);
  # Only an absent one is left out: one that fails to evaluate is the
  # package set's fault and is reported like a named package's failure.
  base = builtins.filter (r: (r.error or null) != "unknown")
    (map resolveOne (builtins.filter (n: !(builtins.elem n namedAttrs)) baseNames));

in
{
  # Named packages first, in the image's order: the first package wins a
  # symlink collision, and the base packages only fill what is left.
  resolved = named ++ base;
}
