#!/bin/sh
# The README's first command on a machine that lacks the project's packages: removes one -dev
# package the project installs (libcjson-dev), hides pkg-config from the first reading of the
# Makefile (as on a machine that has none), and runs `make demo` once, with a short training, in a
# fresh copy of the project. It must succeed in one run and reinstall the package itself.
# Needs root and apt-get (it changes the machine's packages); says skipped otherwise. Whatever
# happens, the package is installed again at the end.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/digitnet-fresh.XXXXXX)
. "$ROOT/tests/lib.sh"
PKG=libcjson-dev
APT="apt-get -o DPkg::Lock::Timeout=300 -y -qq"

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "skip - fresh-machine set-up test: needs root and apt-get"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
restore() {
    dpkg-query -W -f='${Status}' $PKG 2>/dev/null | grep -q "install ok installed" ||
        DEBIAN_FRONTEND=noninteractive $APT install $PKG >/dev/null 2>&1
    rm -rf "$T"
}
trap restore EXIT

# A fresh copy: every file git tracks or would track, as it is in the work tree; no build outputs.
mkdir -p "$T/clone"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - 2>/dev/null) |
    tar xf - -C "$T/clone"
# No node_modules either: make demo's `npm ci` fetches the pinned npm packages into the copy, as on a
# fresh machine. (Never a link to the project's own: npm ci empties the folder it installs into.)
check "the copy has no build directory" test ! -e "$T/clone/build"

DEBIAN_FRONTEND=noninteractive $APT remove $PKG >/dev/null 2>&1
check "$PKG removed" sh -c "! dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -q 'install ok installed'"
check "cJSON.h is gone" test ! -e /usr/include/cjson/cJSON.h

# pkg-config answers nothing while the top-level make reads the Makefile (its $(shell) calls see no
# MAKELEVEL; a sub-make's see 1 or more), as on a machine that has none; sub-makes get the real one.
mkdir -p "$T/bin"
real=$(command -v pkg-config || echo /usr/bin/pkg-config)
cat >"$T/bin/pkg-config" <<STUB
#!/bin/sh
[ -z "\${MAKELEVEL:-}" ] && { echo "pkg-config hidden from the top-level make" >>"$T/hidden"; exit 127; }
exec $real "\$@"
STUB
chmod +x "$T/bin/pkg-config"

# The copy lives outside the project's folder, so its ../shared/data is not there: point at the real data.
# Run from `make test`, this script inherits MAKELEVEL (and MAKEFLAGS): `make demo` in the copy must
# start as a top-level make, as it does for a user.
(cd "$T/clone" && unset MAKELEVEL MAKEFLAGS MFLAGS &&
    PATH="$T/bin:$PATH" DIGITNET_DATA="${DIGITNET_DATA:-$ROOT/../shared/data}" DEMO_EPOCHS=2 DEMO_OUT="$T/out" make demo) >"$T/demo.log" 2>&1
status=$?
check "make demo succeeds in one run (exit $status)" test "$status" -eq 0
[ "$status" -eq 0 ] || tail -20 "$T/demo.log"
check "the first reading of the Makefile saw no pkg-config" test -s "$T/hidden"
check "make demo installed $PKG again" sh -c "dpkg-query -W -f='\${Status}' $PKG | grep -q 'install ok installed'"
check "make demo trained and saved the model" test -s "$T/out/optdigits.safetensors"
check "make demo wrote the report" test -s "$T/out/report/index.html"
check "make demo evaluated the saved model" grep -q "^Test: loss" "$T/demo.log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
