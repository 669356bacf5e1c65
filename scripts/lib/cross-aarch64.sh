# shellcheck shell=bash disable=SC2034  # (CROSS_AARCH64_* are read by the scripts that source this file)
# The aarch64 (arm64) cross toolchain, shared by scripts/package and scripts/cross-check. Sourced, not run.
# Functions (run from the repository root, as root or with sudo available):
#   cross_aarch64_rust_target   rustup target add aarch64-unknown-linux-gnu when missing. Returns 0 when installed,
#                               2 when rustup could not download it (network; reason in CROSS_AARCH64_RUSTUP_ERROR),
#                               1 on any other failure.
#   cross_aarch64_apt           Debian multiarch: dpkg --add-architecture arm64, apt-get update, then
#                               gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and the :arm64 -dev packages of the C
#                               libraries scripts/setup installs for the native build (libopus, libsbc, liblc3).
#   cross_aarch64_env           exports the linker/CC/AR/pkg-config variables cargo and the -sys crates read.
#   cross_apt_install PKG...    apt-get install of what is missing (apt-get update first), via sudo when not root.
# Adding arm64 makes every later `apt-get update` on the host also fetch the arm64 lists; Debian's mirrors carry
# them. When that update fails right after adding the architecture, it is removed again so the host's apt keeps
# working, and cross_aarch64_apt fails.

CROSS_AARCH64_TARGET=aarch64-unknown-linux-gnu
CROSS_AARCH64_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CROSS_AARCH64_RUSTUP_ERROR=""

_cross_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

cross_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== apt-get install ${missing[*]}"
  _cross_sudo apt-get update -q || return 1
  _cross_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

cross_aarch64_rust_target() {
  CROSS_AARCH64_RUSTUP_ERROR=""
  rustup target list --installed | grep -qx "$CROSS_AARCH64_TARGET" && return 0
  echo "== rustup target add $CROSS_AARCH64_TARGET"
  local out rc=0
  out=$(timeout 900 rustup target add "$CROSS_AARCH64_TARGET" 2>&1) || rc=$?
  [ -n "$out" ] && printf '%s\n' "$out" >&2
  [ $rc = 0 ] && return 0
  # Only a failed download counts as "could not download": rustup's own wording for it, or our timeout.
  if [ $rc = 124 ]; then
    CROSS_AARCH64_RUSTUP_ERROR="rustup target add timed out after 900 s"
    return 2
  fi
  local why root
  why=$(grep -iE -m1 'could not download|download failed|failed to download|error sending request|connection refused|dns error|failed to lookup|could not resolve|timed out|network is unreachable' <<<"$out" || true)
  if [ -n "$why" ]; then
    # rustup's innermost cause (the last line of its "Caused by:" list), e.g. "Connection refused (os error 111)".
    root=$(awk '/^Caused by:/{c=1; next} c && /^[[:space:]]*$/{c=0} c{l=$0} END{print l}' <<<"$out" | sed 's/^ *[0-9]*: //')
    CROSS_AARCH64_RUSTUP_ERROR=$(tr -s ' \t' ' ' <<<"$why${root:+: $root}")
    return 2
  fi
  return 1
}

cross_aarch64_apt() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "== dpkg --add-architecture arm64 (Debian multiarch)"
    _cross_sudo dpkg --add-architecture arm64
    if ! _cross_sudo apt-get update -q; then
      echo "cross-aarch64: apt-get update failed after adding arm64 (a source without arm64 packages?);" \
        "removing the arm64 architecture again so the host's apt keeps working" >&2
      _cross_sudo dpkg --remove-architecture arm64 || true
      return 1
    fi
  fi
  # The C libraries linked through pkg-config: the -dev packages scripts/setup installs for the native build.
  local libs=() l
  while read -r l; do libs+=("$l:arm64"); done < <(grep -o 'lib[a-z0-9]*-dev' "$CROSS_AARCH64_ROOT/scripts/setup" | sort -u)
  [ ${#libs[@]} -gt 0 ] || { echo "cross-aarch64: no lib*-dev packages found in scripts/setup" >&2; return 1; }
  cross_apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross "${libs[@]}"
}

cross_aarch64_env() {
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  # pkg-config finds the arm64 .pc files of the multiarch -dev packages, never the host's.
  export PKG_CONFIG_ALLOW_CROSS=1
  export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
  # Set (empty) so cargo-deb does not add its own PKG_CONFIG_PATH_<target> (cargo-deb 3.8 config.rs:651-657): the
  # -sys build scripts track that variable, so scripts/package would rebuild what scripts/cross-check built (~75 s).
  export PKG_CONFIG_PATH=
}
