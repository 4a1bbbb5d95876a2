#!/bin/sh
# make install-test: installs into a staging directory (DESTDIR) and checks what was installed: the
# files and links, the libraries' SONAMEs, NEEDED lists and exported symbols, pkg-config, a program
# built against the installed copy only (examples/classify.c, run on a rendered MNIST test digit with
# a freshly trained model), the man page, the Python package where Debian's python3 finds it; then
# make uninstall, which must leave nothing behind. Run from the project root.
set -eu
: "${DIGITNET:?set DIGITNET to the digitnet binary}"
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
MAKE=${MAKE:-make}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
usr=$stage/usr
lib=$usr/lib

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
ok() { echo "install-test: ok: $*"; }

version=$(sed -n 's/^#define DN_VERSION "\(.*\)"/\1/p' include/digitnet.h)
major=${version%%.*}
[ -n "$version" ] || fail "no DN_VERSION in include/digitnet.h"

$MAKE --no-print-directory -s install DESTDIR="$stage" PREFIX=/usr BUILD="$BUILD" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "make install"; }

# ---------------------------------------------------------------- files and links
pydir=$usr/lib/python3/dist-packages/digitnet
for f in bin/digitnet include/digitnet.h lib/libdigitnet.a lib/libdigitnet-extra.a lib/libdigitnet.so.$version \
    lib/libdigitnet-extra.so.$version lib/pkgconfig/digitnet.pc lib/pkgconfig/digitnet-extra.pc \
    share/man/man1/digitnet.1 lib/python3/dist-packages/digitnet/__init__.py \
    lib/python3/dist-packages/digitnet/_lib.py lib/python3/dist-packages/digitnet/_paths.py; do
    [ -f "$usr/$f" ] || fail "make install did not install /usr/$f"
done
for l in libdigitnet libdigitnet-extra; do
    [ "$(readlink "$lib/$l.so.$major")" = "$l.so.$version" ] || fail "$l.so.$major does not point to $l.so.$version"
    [ "$(readlink "$lib/$l.so")" = "$l.so.$major" ] || fail "$l.so does not point to $l.so.$major"
done
[ -x "$usr/bin/digitnet" ] || fail "/usr/bin/digitnet is not executable"
ok "files, and links libdigitnet.so -> libdigitnet.so.$major -> libdigitnet.so.$version"

# ---------------------------------------------------------------- the ABI
soname() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
exports() { nm -D --defined-only "$1" | awk '{print $3}' | sort; }
core=$lib/libdigitnet.so.$version
extra=$lib/libdigitnet-extra.so.$version
[ "$(soname "$core")" = "libdigitnet.so.$major" ] || fail "SONAME of libdigitnet is '$(soname "$core")'"
[ "$(soname "$extra")" = "libdigitnet-extra.so.$major" ] || fail "SONAME of libdigitnet-extra is '$(soname "$extra")'"
for dep in libcurl libzip libcrypto libssl libcairo libpng libjpeg libmicrohttpd libdigitnet-extra; do
    if needed "$core" | grep -q "^$dep"; then fail "libdigitnet needs $dep: $(needed "$core" | tr '\n' ' ')"; fi
done
needed "$extra" | grep -qx "libdigitnet.so.$major" || fail "libdigitnet-extra does not name libdigitnet.so.$major"
# Exported: exactly the functions digitnet.h declares, each from one of the two libraries.
grep -o '\bdn_[a-z0-9_]*(' include/digitnet.h | tr -d '(' | sort -u >"$work/declared"
exports "$core" >"$work/core"
exports "$extra" >"$work/extra"
bad=$(grep -v '^dn_' "$work/core" "$work/extra" || true)
[ -z "$bad" ] || fail "symbols without the dn_ prefix exported: $bad"
both=$(comm -12 "$work/core" "$work/extra")
[ -z "$both" ] || fail "exported by both libraries: $both"
sort "$work/core" "$work/extra" >"$work/exported"
undeclared=$(comm -23 "$work/exported" "$work/declared")
[ -z "$undeclared" ] || fail "exported but not in digitnet.h: $(echo $undeclared)"
missing=$(comm -13 "$work/exported" "$work/declared")
[ -z "$missing" ] || fail "declared in digitnet.h but exported by neither library: $(echo $missing)"
ok "SONAMEs libdigitnet.so.$major and libdigitnet-extra.so.$major; libdigitnet needs only: $(needed "$core" | tr '\n' ' ')"
ok "exported: $(wc -l <"$work/core") functions from libdigitnet, $(wc -l <"$work/extra") from libdigitnet-extra, all declared in digitnet.h"

# ---------------------------------------------------------------- pkg-config and programs
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
[ "$(pkg-config --modversion digitnet)" = "$version" ] || fail "pkg-config --modversion digitnet"
[ "$(pkg-config --variable=pcfiledir digitnet)" = "$lib/pkgconfig" ] || fail "pkg-config found another digitnet.pc"
cat >"$work/core.c" <<'EOF'
#include <digitnet.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    printf("%s\n", dn_version());
    return strcmp(dn_version(), DN_VERSION) != 0;
}
EOF
# Built with digitnet.pc alone, from the staging directory's header: the source tree's include/ is
# not on the command line.
cc "$work/core.c" $(pkg-config --cflags --libs digitnet) -o "$work/core" || fail "building a program with pkg-config digitnet"
if needed "$work/core" | grep -q -e libcurl -e libcairo -e libpng; then fail "a core-only program links $(needed "$work/core")"; fi
[ "$(LD_LIBRARY_PATH=$lib "$work/core")" = "$version" ] || fail "dn_version() at run time"
LD_LIBRARY_PATH=$lib ldd "$work/core" | grep -q "libdigitnet.so.$major => $lib/" || fail "the program did not load the staged libdigitnet"
cc "$work/core.c" $(pkg-config --cflags digitnet) "$lib/libdigitnet.a" $(pkg-config --static --libs digitnet | sed 's/-ldigitnet\b//') \
    -o "$work/core_static" || fail "linking the static libdigitnet.a with pkg-config --static"
[ "$("$work/core_static")" = "$version" ] || fail "dn_version() of the static build"
ok "a program built with pkg-config digitnet (shared and static) prints dn_version() = $version"

cc examples/classify.c $(pkg-config --cflags --libs digitnet-extra digitnet) -o "$work/classify" ||
    fail "building examples/classify.c against the installed libraries"
"$usr/bin/digitnet" train --data mnist-10k --model models/mnist.cnn --epochs 2 --batch 64 --seed 1 --threads 2 \
    --out "$work/model.safetensors" --quiet >"$work/train.log" 2>&1 || { cat "$work/train.log" >&2; fail "training a model"; }
mkdir -p "$work/digits"
"$BUILD/tests/render_digits" canvases "$work/digits" 5 7 >/dev/null || fail "render_digits"
right=0
for i in 0 1 2 3 4; do
    png=$work/digits/000$i.png
    want=$(awk -v f="000$i.png" '$1 == f {print $2}' "$work/digits/labels.txt")
    got=$(LD_LIBRARY_PATH=$lib "$work/classify" "$work/model.safetensors" "$png") || fail "classify $png"
    cli=$("$DIGITNET" predict --model "$work/model.safetensors" --top 1 "$png")
    [ "$got" = "$cli" ] || fail "classify says '$got', digitnet predict '$cli'"
    [ "${got#*: }" != "${got#*: $want }" ] && right=$((right + 1))
    echo "  $got (label $want)"
done
[ "$right" -ge 4 ] || fail "classify got only $right of 5 digits right"
ok "examples/classify.c built against the installed copy: the same answers as digitnet predict, $right of 5 right"

# ---------------------------------------------------------------- man page
man1=$usr/share/man/man1/digitnet.1
groff -man -Tutf8 -ww -z "$man1" 2>"$work/groff.err" || fail "groff cannot format the man page"
[ ! -s "$work/groff.err" ] || { cat "$work/groff.err" >&2; fail "groff warnings in the man page"; }
groff -man -Tutf8 "$man1" 2>/dev/null | grep -q 'digitnet - train, evaluate' || fail "the man page has no NAME line"
if command -v man >/dev/null 2>&1; then
    MANPATH=$usr/share/man man digitnet 2>/dev/null | grep -q 'pkg-config' || fail "man digitnet with MANPATH on the staged copy"
fi
ok "man page formats without warnings"

# ---------------------------------------------------------------- the Python package
sitedirs=$($PYTHON -c 'import sys; print("\n".join(sys.path))')
echo "$sitedirs" | grep -qx /usr/lib/python3/dist-packages || fail "$PYTHON does not look in /usr/lib/python3/dist-packages"
out=$(env -u DIGITNET_LIB PYTHONPATH="$usr/lib/python3/dist-packages" LD_LIBRARY_PATH="$lib" "$PYTHON" -c '
import sys, digitnet
m = digitnet.load(sys.argv[1])
maps = [l.split()[-1] for l in open("/proc/self/maps") if "libdigitnet.so" in l]
print(digitnet.__file__, maps[0], digitnet.version(), m.input_shape)' "$work/model.safetensors") ||
    fail "importing the installed Python package"
set -- $out
case $1 in "$pydir"/*) ;; *) fail "python imported digitnet from $1" ;; esac
case $2 in "$lib"/*) ;; *) fail "the Python package loaded $2" ;; esac
[ "$3" = "$version" ] || fail "digitnet.version() = $3"
ok "the installed Python package imports from $pydir and loads the staged library"
# PREFIX=/usr/local goes where Debian's python3 looks for locally installed packages.
$MAKE --no-print-directory -s install DESTDIR="$work/local" PREFIX=/usr/local BUILD="$BUILD" >/dev/null 2>&1 || fail "make install PREFIX=/usr/local"
localdir=$(cd "$work/local" && ls -d usr/local/lib/python3*/dist-packages)
echo "$sitedirs" | grep -qx "/$localdir" || fail "/$localdir is not on $PYTHON's path"
grep -q 'LIBDIR = "/usr/local/lib"' "$work/local/$localdir/digitnet/_paths.py" || fail "_paths.py for PREFIX=/usr/local"
ok "PREFIX=/usr/local puts the package in /$localdir, on python3's path"

# ---------------------------------------------------------------- uninstall
$MAKE --no-print-directory -s uninstall DESTDIR="$stage" PREFIX=/usr BUILD="$BUILD" >/dev/null || fail "make uninstall"
left=$(find "$stage" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
ok "make uninstall removes every file"
