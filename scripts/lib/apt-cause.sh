# shellcheck shell=bash
# apt_failure_cause RC OUTPUT: prints, in a few words, why an apt-get/apt-cache command failed, read from its exit
# status RC and its OUTPUT (stdout and stderr), so an error message can name the cause apt itself reported rather
# than guess. The first matching cause wins; the order puts what a user can act on first. Pure (no I/O but stdout).
# Sourced by scripts/rig; checked by scripts/lib/apt-cause-test with apt's own wording of each failure.
apt_failure_cause() {
  local rc=$1 out=$2 line
  # m PATTERN: the first output line matching the extended regex PATTERN (case-insensitive), tidied.
  m() { grep -iE -m1 -- "$1" <<<"$out" | sed 's/^[EWN]: //; s/^ *//' | cut -c1-200; }
  if [ "$rc" = 124 ]; then echo "timed out (no answer from the mirror in time)"; return; fi
  if line=$(m 'is expired \(invalid since') && [ -n "$line" ]; then
    echo "the mirror's Release file is expired (its Valid-Until is in the past: a frozen mirror snapshot, or this" \
      "machine's clock is ahead; apt -o Acquire::Check-Valid-Until=false accepts it): $line"
  elif line=$(m 'is not valid yet \(invalid for another') && [ -n "$line" ]; then
    echo "the mirror's Release file is not valid yet (this machine's clock is behind): $line"
  elif line=$(m 'NO_PUBKEY|is not signed|signatures were invalid|signatures couldn.t be verified|EXPKEYSIG') && [ -n "$line" ]; then
    echo "the mirror's signature does not verify against the keyring (debian-archive-keyring missing or old?): $line"
  elif line=$(m 'certificate verification failed|server certificate|certificate is NOT trusted') && [ -n "$line" ]; then
    echo "TLS certificate not trusted (a proxy's CA missing from /usr/local/share/ca-certificates?): $line"
  elif line=$(m "temporary failure resolving|could not resolve|name or service not known") && [ -n "$line" ]; then
    echo "the mirror's host name does not resolve (DNS or no network): $line"
  elif line=$(m 'connection refused|connection timed out|network is unreachable|no route to host|could not connect|failed to connect|unable to connect') && [ -n "$line" ]; then
    echo "mirror unreachable: $line"
  elif line=$(m '404 +not found|does not have a release file|no longer has a release file') && [ -n "$line" ]; then
    echo "the mirror has no such suite or file (wrong mirror URL or suite name?): $line"
  elif line=$(m 'hash sum mismatch|file has unexpected size|clearsigned file isn.t valid') && [ -n "$line" ]; then
    echo "the mirror served inconsistent files (mid-sync, or a proxy altering them; retry later): $line"
  elif line=$(m 'no space left on device') && [ -n "$line" ]; then
    echo "disk full: $line"
  elif line=$(m 'could not get lock|unable to acquire the dpkg frontend lock|is another process using it') && [ -n "$line" ]; then
    echo "another apt or dpkg is running: $line"
  elif line=$(m 'unable to locate package|has no installation candidate|version .* was not found|not installable') && [ -n "$line" ]; then
    echo "the package or version is not in this suite: $line"
  elif line=$(m '^(E|W): ') && [ -n "$line" ]; then
    echo "apt said: $line"
  else
    echo "exit status $rc, no apt error in its output"
  fi
}
