# A bench-only package set (bench/origin/run.ts): one image, `large`, whose
# closure is about 480 MB mixing what real closures hold:
#
#   bench-assets     200 MB  random bytes: compressed media, archives (incompressible)
#   bench-binaries   150 MB  hex dumps of random bytes: compress about 2:1, like machine code
#   bench-logs       100 MB  log lines: compress about 10:1, like text and data files
#   bench-small       30 MB  3000 small files: tar headers and per-file costs
#
# The bytes come from /dev/urandom when the paths are built, so nothing
# generated is committed; the store paths themselves do not depend on those
# bytes. File sizes differ, as in real packages: files of equal size are
# hashed in full before a layer is written (entries.ts finds duplicates). Built with the host's /bin/sh and absolute-path busybox (Debian's
# busybox-static), as nothing else is available offline.
{ system ? builtins.currentSystem, ... }:

let
  bb = "/bin/busybox";
  mk = name: script: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-e" "-c" script ];
  };

  assets = mk "bench-assets" ''
    ${bb} mkdir -p $out/share/assets
    i=0
    while [ $i -lt 40 ]; do
      ${bb} head -c $((3145728 + i * 104729)) /dev/urandom > $out/share/assets/asset-$i.bin
      i=$((i + 1))
    done
  '';

  binaries = mk "bench-binaries" ''
    ${bb} mkdir -p $out/lib
    i=0
    while [ $i -lt 15 ]; do
      ${bb} head -c $((1500000 + i * 70001)) /dev/urandom | ${bb} hexdump -v -C > $out/lib/libbench-$i.so
      i=$((i + 1))
    done
  '';

  logs = mk "bench-logs" ''
    ${bb} mkdir -p $out/share/logs
    i=0
    while [ $i -lt 4 ]; do
      ${bb} seq 1 $((312500 + i * 1013)) | ${bb} awk -v part=$i '{ n = $1 + part * 312500; printf "%08d INFO worker-%d handled GET /api/v1/items/%d in %d ms status=%d\n", n, n % 16, n * 7 % 100000, n % 997, (n % 50 ? 200 : 503) }' > $out/share/logs/part-$i.log
      i=$((i + 1))
    done
  '';

  small = mk "bench-small" ''
    i=0
    while [ $i -lt 3000 ]; do
      d=$out/lib/python3/site-packages/pkg$((i / 100))
      [ -d $d ] || ${bb} mkdir -p $d
      ${bb} head -c $((1024 + i * 7 % 2048)) /dev/urandom | ${bb} hexdump -v -C > $d/module_$i.py
      i=$((i + 1))
    done
  '';
in
{
  # Each part is an image of its own too: `assets` shows what incompressible data costs.
  inherit assets binaries logs small;

  large = mk "bench-large" ''
    ${bb} mkdir -p $out/share
    # Referenced, so all four are in the runtime closure.
    echo ${assets} ${binaries} ${logs} ${small} > $out/share/closure
  '';
}
