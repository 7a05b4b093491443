# Fetches the package set an image is built from, described by the JSON
# object the origin passes with --argstr (so no client value is ever Nix
# code). Shared by fetch.nix (the fetch step on its own, whose failure is the
# source's, not the build's) and image.nix.
#
#   { type = "path"; path }                   a local directory
#   { type = "git"; url; rev; ref?; allRefs? } builtins.fetchGit, pinned by rev
#   { type = "tarball"; url; sha256? }         builtins.fetchTarball
src:

if src.type == "path" then src.path
else if src.type == "git" then
  builtins.fetchGit ({ url = src.url; rev = src.rev; }
    // (if src ? ref then { inherit (src) ref; } else { })
    # A bare commit may live on any branch; without a ref Nix only looks at the default one.
    // (if src.allRefs or false then { allRefs = true; } else { }))
else if src.type == "tarball" then
  builtins.fetchTarball ({ url = src.url; } // (if src ? sha256 then { inherit (src) sha256; } else { }))
else throw "unknown package source type ${src.type}"
