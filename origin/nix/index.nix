# The search index of a package set: every package a user can name, with
# what people search by. Walks the set as nixpkgs' own search does (nix-env
# -qa): the top-level derivations, and the derivations inside attribute sets
# marked `recurseForDerivations = true` (python3Packages and friends).
#
# Every argument arrives through --argstr, exactly as for image.nix: `source`
# is a JSON object decoded by builtins.fromJSON, never Nix code.
#
# An attribute that throws (nixpkgs' removed aliases, unfree or broken
# packages) is left out, through builtins.tryEval, instead of failing the
# whole index. The names of every walked set are kept too, so the origin can
# tell "no such attribute" from "not indexed" without running Nix.
{ source, system }:

let
  src = builtins.fromJSON source;
  fetched = import ./source.nix src;
  pkgs = import fetched { inherit system; config = { }; overlays = [ ]; };

  # nixpkgs nests package sets a few levels deep at most; a bound keeps a
  # self-referencing set marked for recursion from walking forever.
  maxDepth = 4;

  attempt = v: builtins.tryEval (builtins.deepSeq v v);
  text = v: if builtins.isString v then v else "";

  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
  recurses = v: builtins.isAttrs v && !(isDerivation v) && (v.recurseForDerivations or false) == true;

  entryOf = path: drv:
    let
      e = attempt {
        attrPath = builtins.concatStringsSep "." path;
        name = text (drv.pname or (builtins.parseDrvName (drv.name or "")).name);
        version = text (drv.version or (builtins.parseDrvName (drv.name or "")).version);
        description = text (drv.meta.description or "");
      };
    in if e.success then [ e.value ] else [ ];

  # { packages = [ entry ]; sets = [ { path; names } ]; } for one set and what it recurses into.
  walk = path: set: depth:
    let
      names = builtins.attrNames set;
      visit = name:
        let
          got = builtins.tryEval set.${name};
          value = got.value;
          kind = builtins.tryEval (if isDerivation value then "drv" else if recurses value then "set" else "other");
          here = path ++ [ name ];
        in
          if !got.success || !kind.success then { packages = [ ]; sets = [ ]; }
          else if kind.value == "drv" then { packages = entryOf here value; sets = [ ]; }
          else if kind.value == "set" && depth < maxDepth then walk here value (depth + 1)
          else { packages = [ ]; sets = [ ]; };
      children = map visit names;
    in {
      packages = builtins.concatMap (c: c.packages) children;
      sets = [ { path = builtins.concatStringsSep "." path; inherit names; } ] ++ builtins.concatMap (c: c.sets) children;
    };
in
walk [ ] pkgs 0
