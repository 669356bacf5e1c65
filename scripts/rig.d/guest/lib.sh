# Guest-side helpers for rig scenarios (bash). Sourced by runner.sh and by every scenario.
# Results go to $O (= /share/out, copied to target/rig/SCENARIO/ on the host):
#   checks.tsv   one line per check:  NAME <TAB> PASS|FAIL <TAB> DETAIL
#   figures.tsv  one line per figure: KEY <TAB> VALUE
# The host turns them into report.json. A scenario passes only if it recorded at least one check, every check
# passed, and it finished within its timeout.

# shellcheck disable=SC2034  # BTD, SID, A2DP_SINK_UUID, BTC_PID are for scenarios
O=/share/out
# btmon's capture: written to tmpfs while the scenario runs (writing it over 9p under TCG made btmon drop packets:
# half the ISO packets were missing), copied to $O/hci.btsnoop at teardown. Scenarios may read it as it grows.
BTSNOOP=/run/hci.btsnoop
IN=/share/in
SID=/opt/bluez-sid/bin
# `# rig: bluez=sid` (or RIG_BLUEZ=sid from the host): bluetoothd and the BlueZ tools from sid (5.87); the runner
# puts $SID first in PATH, so bluetoothctl, btmgmt and btmon are sid's too.
if [ "${RIG_BLUEZ:-trixie}" = sid ]; then BTD=/opt/bluez-sid/libexec/bluetoothd; else BTD=/usr/libexec/bluetooth/bluetoothd; fi
mkdir -p "$O"
# RIG_BREAK=send (comma-separated with others): every bluebridge the scenario starts drops each A2DP packet and ISO
# SDU just before writing it (test-only hook BLUEBRIDGE_TEST_DROP_PACKETS, src/output/mod.rs), so the gated audio
# checks must fail. Called by the runner after it sourced the env file (RIG_BREAK is not set yet when lib.sh is).
rig_break_env() { if [[ ",${RIG_BREAK:-}," == *",send,"* ]]; then export BLUEBRIDGE_TEST_DROP_PACKETS=1; log "RIG_BREAK=send: BLUEBRIDGE_TEST_DROP_PACKETS=1"; fi; }

# Everything below avoids forking where it can: a process start costs ~0.1 s under TCG.
up() { local u _; read -r u _ < /proc/uptime; echo "$u"; }
log() { echo "[$(up)] $*"; }
console() { echo "RIG: $*" > /dev/console 2>/dev/null || true; }
# step NAME: a marker in the scenario log and on the VM console
step() { local u; u=$(up); echo; echo "### $* (t=${u}s)"; console "step $* (t=${u}s)"; }

# _clean TEXT: one line, no tabs, at most 600 characters (sets REPLY)
_clean() { REPLY=$*; REPLY=${REPLY//$'\t'/ }; REPLY=${REPLY//$'\r'/ }; REPLY=${REPLY//$'\n'/ }; REPLY=${REPLY:0:600}; }

# check NAME PASS|FAIL [DETAIL...]   (also accepts 0 = PASS, true/yes/ok; anything else is FAIL)
check() {
  local name=$1 verdict=${2:-FAIL} detail; shift 2 || shift $#
  case "$verdict" in PASS|pass|0|true|yes|ok) verdict=PASS;; *) verdict=FAIL;; esac
  _clean "$*"; detail=$REPLY; _clean "$name"; name=$REPLY
  printf '%s\t%s\t%s\n' "$name" "$verdict" "$detail" >> "$O/checks.tsv"
  echo "CHECK $name $verdict $detail"
  console "check $name $verdict"
  [ "$verdict" = PASS ]
}
# figure KEY VALUE   (numbers stay numbers in report.json)
figure() { local k v; _clean "$1"; k=$REPLY; _clean "$2"; v=$REPLY; printf '%s\t%s\n' "$k" "$v" >> "$O/figures.tsv"; echo "FIGURE $k $v"; }

# t SECS CMD...: run CMD with a timeout (SIGTERM, then SIGKILL 3 s later); logs timeouts. Returns CMD's status.
t() {
  local secs=$1; shift
  timeout -k 3 "$secs" "$@"; local rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && log "TIMEOUT after ${secs}s: $*"
  return $rc
}
# check_cmd NAME SECS CMD...: a check that passes when CMD exits 0 within SECS. Output goes to the log.
check_cmd() {
  local name=$1 secs=$2; shift 2
  local out rc
  out=$(t "$secs" "$@" 2>&1); rc=$?
  printf '%s\n' "$out"
  local last; last=$(printf '%s\n' "$out" | grep -v '^\s*$' | tail -1)
  if [ $rc -eq 0 ]; then check "$name" PASS "$last"; else
    [ $rc -eq 124 ] && last="timed out after ${secs}s; $last"
    check "$name" FAIL "rc=$rc: $last"; fi
}
# wait_for SECS CMD...: poll CMD (every 0.5 s) until it succeeds or SECS pass. CMD's arguments are expanded
# once, by the caller: to re-evaluate something each time, pass a function or `sh -c '...'`.
wait_for() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  while ! "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.5
  done
}

# within VALUE MIN MAX: true if the number VALUE lies in [MIN, MAX] (false for empty / non-numbers)
within() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v ~ /^-?[0-9.]+(e-?[0-9]+)?$/ && v + 0 >= lo + 0 && v + 0 <= hi + 0) }'; }

# ---- controllers -------------------------------------------------------------------------------------------
# btmgmt info for all controllers at once (one call: each btmgmt start costs ~0.5 s under TCG)
mgmt_info() { t 10 btmgmt info 2>/dev/null; }
# info_field IDX FIELD [INFO]: from `btmgmt info` text (default: a fresh one), FIELD of hciIDX:
#   addr | supported | current
info_field() {
  local info=${3:-$(mgmt_info)}
  awk -v want="hci$1:" -v f="$2" '
    /^hci[0-9]+:/ { cur = $1; next }
    cur == want && f == "addr" && $1 == "addr" { print $2; exit }
    cur == want && f != "addr" && index($0, f " settings: ") { sub(/.*settings: /, ""); print; exit }' <<<"$info"
}
addr() { info_field "$1" addr "$(t 10 btmgmt --index "$1" info 2>/dev/null)"; }
settings() { info_field "$1" "$2"; }
controller_count() { t 10 btmgmt info 2>/dev/null | grep -c '^hci[0-9]*:'; }
# adapter_count: adapters bluetoothd exports on D-Bus
adapter_count() {
  t 10 dbus-send --system --print-reply --dest=org.bluez / org.freedesktop.DBus.ObjectManager.GetManagedObjects \
    2>/dev/null | grep -c 'string "org.bluez.Adapter1"'
}
have_controllers() { [ "$(controller_count)" -ge "$1" ]; }
have_adapters() { [ "$(adapter_count)" -ge "$1" ]; }
have_powered() { [ "$(t 10 btmgmt info 2>/dev/null | grep -c 'current settings: powered')" -ge "$1" ]; }
mgmt() { local i=$1; shift; t 15 btmgmt --index "$i" "$@"; }

# ---- devices over D-Bus ---------------------------------------------------------------------------------------
dev_path() { echo "/org/bluez/hci$1/dev_$(echo "$2" | tr : _)"; }
# dev_prop IDX ADDR PROP: prints the value of Device1.PROP (e.g. true/false, a string)
dev_prop() {
  t 10 dbus-send --system --print-reply --dest=org.bluez "$(dev_path "$1" "$2")" \
    org.freedesktop.DBus.Properties.Get string:org.bluez.Device1 string:"$3" 2>/dev/null |
    sed -n 's/^ *variant *[a-z0-9]* *//p' | tr -d '"' | head -1
}
# prop_is IDX ADDR PROP VALUE
prop_is() { [ "$(dev_prop "$1" "$2" "$3")" = "$4" ]; }
set_trusted() {
  t 10 dbus-send --system --print-reply --dest=org.bluez "$(dev_path "$1" "$2")" \
    org.freedesktop.DBus.Properties.Set string:org.bluez.Device1 string:Trusted variant:boolean:true >/dev/null
}
# connect_profile IDX ADDR UUID
connect_profile() {
  t 40 dbus-send --system --print-reply --dest=org.bluez "$(dev_path "$1" "$2")" \
    org.bluez.Device1.ConnectProfile string:"$3"
}
A2DP_SINK_UUID=0000110b-0000-1000-8000-00805f9b34fb

# ---- agent: a bluetoothctl fed through a FIFO keeps a NoInputNoOutput agent registered ---------------------------
agent_start() {
  [ -p /tmp/btc.in ] && return 0
  mkfifo /tmp/btc.in
  bluetoothctl < /tmp/btc.in > "$O/bluetoothctl.log" 2>&1 &
  BTC_PID=$!
  exec 7>/tmp/btc.in
  sleep 1
  btc "agent NoInputNoOutput"; btc "default-agent"
}
# btc CMD: a command to the background bluetoothctl (output in bluetoothctl.log)
btc() { echo "$*" >&7; sleep "${BTC_SLEEP:-1}"; }

# pair_bredr FROM_IDX TO_IDX: BR/EDR pairing (NoInputNoOutput, just works) FROM -> TO; both sides trusted.
pair_bredr() {
  local a b f=$1 to=$2
  a=$(addr "$f"); b=$(addr "$to")
  agent_start
  mgmt "$to" connectable on; mgmt "$to" discov yes; mgmt "$to" bondable on; mgmt "$f" bondable on
  mgmt "$f" io-cap 3; mgmt "$to" io-cap 3
  t 40 btmgmt --index "$f" pair -c 3 -t 0 "$b"; local rc=$?
  wait_for 10 prop_is "$f" "$b" Paired true
  set_trusted "$f" "$b"; set_trusted "$to" "$a"
  return $rc
}

# ---- bluebridge -----------------------------------------------------------------------------------------------
# bb SECS ARGS...: run the bluebridge binary carried in from the host; stderr appended to bluebridge.log.
bb() {
  local secs=$1; shift
  echo "[$(up)] bluebridge $*" >> "$O/bluebridge.log"
  t "$secs" bluebridge "$@" 2>> "$O/bluebridge.log"
}

# bb_pair FROM TO ADDR: `bluebridge pair` from hciFROM to the A2DP sink on hciTO (address ADDR): the sink made
# connectable, discoverable and bondable with NoInputNoOutput, a default agent, check `pair-hciFROM`, then the sink
# trusts hciFROM so it may reconnect by itself.
bb_pair() {
  local rc p
  mgmt "$2" connectable on; mgmt "$2" discov yes; mgmt "$2" bondable on; mgmt "$2" io-cap 3
  agent_start
  bb 60 pair "$3" --adapter "hci$1" --seconds 20 >> "$O/bluebridge.log"; rc=$?
  p=$(dev_prop "$1" "$3" Paired)
  check "pair-hci$1" "$([ "$p" = true ] && echo PASS || echo FAIL)" "bluebridge pair rc=$rc; Paired=$p"
  set_trusted "$2" "$(addr "$1")"
}

# bb_broadcast_start IDX [KEY=VALUE...]: writes /tmp/bb.toml (tone source, control socket /tmp/bb.sock, state
# /tmp/bb-state, then any other outputs, then the broadcast output "auracast" on hciIDX), starts `bluebridge run`
# (log level info,bluebridge=debug; stderr to bluebridge.log), waits up to 60 s for 'BIG up on hciIDX' and checks
# big-up. Sets BB (bluebridge's pid). KEYs:
#   buffer_ms=MS        the tone source's buffer (300)
#   preset=NAME         the broadcast preset (48_2_1); the one place a scenario's preset goes into the config
#   extra=TOML          other [[output]] tables, written before the broadcast output
#   source=TOML         the [source] table's lines instead of the tone source (buffer_ms is then unused)
#   raw=TOML            a line of the broadcast output as it is (e.g. manufacturer_data = { company = 87, … })
#   anything else       a `key = "value"` line of the broadcast output (channels, broadcast_code, …); an empty
#                       value leaves the line out (e.g. broadcast_code="$CODE" with no code)
bb_broadcast_start() {
  local idx=$1 buffer_ms=300 preset=48_2_1 extra="" lines="" source="" kv k v; shift
  for kv in "$@"; do
    k=${kv%%=*}; v=${kv#*=}
    case "$k" in
      buffer_ms) buffer_ms=$v;;
      preset) preset=$v;;
      extra) extra=$v;;
      source) source=$v;;
      raw) [ -n "$v" ] && lines+="$v"$'\n';;
      *) [ -n "$v" ] && lines+="$k = \"$v\""$'\n';;
    esac
  done
  {
    if [ -n "$source" ]; then printf '[source]\n%s\n\n' "$source"
    else printf '[source]\nkind = "tone"\nbuffer_ms = %s\n\n' "$buffer_ms"; fi
    printf '[service]\ncontrol_socket = "/tmp/bb.sock"\nstate_dir = "/tmp/bb-state"\n\n'
    [ -n "$extra" ] && printf '%s\n\n' "$extra"
    printf '[[output]]\nname = "auracast"\nkind = "broadcast"\nadapter = "hci%s"\npreset = "%s"\n%s' \
      "$idx" "$preset" "$lines"
  } > /tmp/bb.toml
  cp /tmp/bb.toml "$O/bb.toml"
  BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
  BB=$!
  wait_for 60 grep -q "BIG up on hci$idx" "$O/bluebridge.log"
  check big-up $? "$(grep -E 'broadcast|BIG' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-500)"
}

# btctl_clean FILE: a bluetoothctl transcript without carriage returns, colours and prompts.
btctl_clean() { tr -d '\r' < "$1" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g; s/\[[^]]*\]> *//g'; }

# ---- LE Audio broadcast sink on the kernel's ISO socket ---------------------------------------------------------
# iso_sink IDX BROADCASTER OUT [BCODE_HEX]: BlueZ's isotest (trixie's bluez-test-tools) as a broadcast sink on
# hciIDX: binds an ISO socket to the broadcaster's address (SID 0, BIS 1) and listens; the kernel creates the PA
# sync, reads the BIGInfo and syncs to the BIG (with the 16-byte Broadcast Code in hex, encryption on); every SDU
# of BIS 1 is appended to OUT as it arrives. No bluetoothd involved on the sink side. Sets ISO_SINK_PID; the log is
# $O/isotest-hciIDX.log. (BlueZ 5.82's own sink fails its BIG sync in about half the runs; 5.87's needs a kernel
# newer than 6.12, see scripts/rig.d/README.md.)
iso_sink() {
  local args=(-i "hci$1" -V le_public -q "--dump=$3")
  [ -n "${4:-}" ] && args+=(-e 1 -k "$4")
  : > "$3"
  isotest "${args[@]}" "$2" > "$O/isotest-hci$1.log" 2>&1 &
  ISO_SINK_PID=$!
}
# iso_sink_stop PID: stops an iso_sink (isotest forks a child per synced BIS: stop it first).
iso_sink_stop() {
  pkill -TERM -P "$1" 2>/dev/null; kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
# iso_sink_join IDX BROADCASTER OUT [BCODE_HEX]: iso_sink, then a bounded wait for its first SDU: up to
# ISO_JOIN_TRIES (3) tries of ISO_JOIN_SECS (20 s) each, as a real receiver rescans. Between tries the sink is
# stopped and its PA sync ended (pa_terminate.py), so the next try syncs from scratch. Why: the guest kernel (6.12)
# sometimes never sends LE BIG Create Sync when the emulator's BIGInfo report arrives after the kernel has
# disabled scanning (seen 6-7 Dec in `broadcast-reload`: PA sync established, BIGInfo reported, then nothing for
# 60 s). Sets ISO_SINK_PID and ISO_SINK_TRIES (the tries used; 0 = never joined); returns 0 once OUT has data.
# The log of the last try is $O/isotest-hciIDX.log; earlier tries' are kept as isotest-hciIDX.tryN.log.
iso_sink_join() {
  local try tries=${ISO_JOIN_TRIES:-3} secs=${ISO_JOIN_SECS:-20}
  ISO_SINK_TRIES=0
  for try in $(seq 1 "$tries"); do
    iso_sink "$@"
    if wait_for "$secs" test -s "$3"; then ISO_SINK_TRIES=$try; return 0; fi
    log "iso_sink_join: hci$1 received nothing in $secs s (try $try of $tries): $(grep -v '^$' "$O/isotest-hci$1.log" | tail -1)"
    iso_sink_stop "$ISO_SINK_PID"
    cp "$O/isotest-hci$1.log" "$O/isotest-hci$1.try$try.log"
    python3 -S "$IN/pa_terminate.py" "$BTSNOOP" "$1" >> "$O/pa-terminate.txt" 2>&1
  done
  return 1
}
# bis_sinks_away IDX...: after iso_sink_stop, takes the broadcast sink controllers hciIDX away before the BIG ends:
# LE Periodic Advertising Terminate Sync on each (pa_terminate.py: the kernel ends the BIG sync when isotest's socket
# closes but not the PA sync, and sid's btvirt crashes (GPF) when the broadcaster removes its advertising set while
# a receiver is still synced), then powers each off. Result lines in $O/pa-terminate.txt.
bis_sinks_away() {
  local i
  python3 -S "$IN/pa_terminate.py" "$BTSNOOP" "$@" >> "$O/pa-terminate.txt" 2>&1
  cat "$O/pa-terminate.txt"
  for i in "$@"; do mgmt "$i" power off > /dev/null; done
  sleep 1
}
# bcode_hex TEXT: a text Broadcast Code as the 32 hex digits on the air (UTF-8, zero-padded to 16 bytes).
bcode_hex() { local h; h=$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n'); h=${h}00000000000000000000000000000000; echo "${h:0:32}"; }

# bis_preset NAME: the stream of a BAP broadcast preset that bis_analyse and bis_timing decode: sets BIS_OCTETS,
# BIS_RATE (Hz, the codec's: the capture is decoded at it) and BIS_DT_US (BAP Table 6.4; _1 and _2 share the codec
# configuration). Unset: 48_2_1. Returns 1 for a name bluebridge cannot broadcast (441_*) or does not know.
bis_preset() {
  local c
  case ${1%_[12]} in
    8_1) c="26 8000 7500" ;; 8_2) c="30 8000 10000" ;; 16_1) c="30 16000 7500" ;; 16_2) c="40 16000 10000" ;;
    24_1) c="45 24000 7500" ;; 24_2) c="60 24000 10000" ;; 32_1) c="60 32000 7500" ;; 32_2) c="80 32000 10000" ;;
    48_1) c="75 48000 7500" ;; 48_2) c="100 48000 10000" ;; 48_3) c="90 48000 7500" ;; 48_4) c="120 48000 10000" ;;
    48_5) c="117 48000 7500" ;; 48_6) c="155 48000 10000" ;;
    *) log "bis_preset: no broadcast preset $1"; return 1 ;;
  esac
  read -r BIS_OCTETS BIS_RATE BIS_DT_US <<< "$c"
}
# bis_analyse TAG FILE IDX: decodes a BIS capture of bluebridge's test signal (LC3 as bis_preset set, 48_2_1 by
# default: 100-byte SDUs, 100 a second) that the sink controller hciIDX received, with liblc3, and checks it: received
# (the SDUs in the file against the capture's own span: first to last SDU as btmon's kernel stamps on hciIDX show it,
# iso_span.py, one per SDU interval; RIG_BCAST_RX_TOL_PCT, 1 % + 2), decodes (0 refused), frequency (440 Hz ±2 %),
# clicks (one a second of the audio received), correlation (every one-second segment >= 0.99 with the source, one
# spoiled second tolerated), no-gaps. Check names get "-TAG", figures "_TAG" when TAG is set; files are FILE's name
# with .wav/.decode.txt/.analysis.txt/.tone.txt/.span.txt. Sets BIS_SECS_RX (whole seconds of audio received).
bis_analyse() {
  local tag=$1 f=$2 idx=$3 c="" g="" base rx fq frames exp tol oct=${BIS_OCTETS:-100} dt=${BIS_DT_US:-10000}
  [ -n "$tag" ] && { c="-$tag"; g="_$tag"; }
  base=${f%.bin}
  python3 -S "$IN/lc3_decode.py" "$f" "$base.wav" "$oct" "${BIS_RATE:-48000}" "$dt" > "$base.decode.txt" 2>&1
  python3 -S "$IN/analyze_clicks.py" "$base.wav" > "$base.analysis.txt" 2>&1
  python3 -S "$IN/iso_span.py" "$BTSNOOP" "$idx" "$dt" > "$base.span.txt" 2>&1
  cat "$base.decode.txt" "$base.analysis.txt" "$base.span.txt"
  _bv() { sed -n "s/^$1=//p" "$base.decode.txt" "$base.analysis.txt" | head -1; }
  _sv() { sed -n "s/^$1=//p" "$base.span.txt" | head -1; }
  rx=$(stat -c%s "$f" 2>/dev/null || echo 0)
  frames=$(_bv frames); frames=${frames:-0}
  figure "rx_bytes$g" "$rx"
  figure "frames$g" "$frames"; figure "concealed$g" "$(_bv concealed)"
  figure "clicks$g" "$(_bv clicks)"; figure "correlation$g" "$(_bv correlation)"; figure "gaps$g" "$(_bv gaps)"
  figure "spacing_err_us_max$g" "$(_bv spacing_err_us_max)"
  exp=$(_sv expected); exp=${exp:-0}
  figure "rx_span_s$g" "$(_sv span_s)"; figure "rx_expected$g" "$exp"; figure "rx_sdus_btmon$g" "$(_sv sdus)"
  figure "rx_sent$g" "$(_sv sent)"; figure "rx_arrival_gap_ms_max$g" "$(_sv arrival_gap_ms_max)"
  # The SDUs the sink wrote against the SDUs its capture's span holds at one per SDU interval. Tolerance 1 % + 2 (the
  # emulator delivers in bursts when the VM stalls, so the first and last arrivals may be late by different
  # amounts): measured 3 Dec at load 6, broadcast: span 20.838 s = 2085 due, the broadcaster sent exactly 2085, the
  # sink wrote 2079 (-0.3 %); broadcast-encrypted: 2604 due, 2382 sent (bluebridge starved), 2379 written (-8.6 %,
  # 8 of 20 one-second segments spoiled).
  tol=$(( exp * ${RIG_BCAST_RX_TOL_PCT:-1} / 100 + 2 ))
  within "$frames" $((exp - tol)) $((exp + tol)) && [ "$exp" -gt 0 ]
  check "received$c" $? "$rx bytes = $frames LC3 frames; the capture spans $(_sv span_s) s on hci$idx (btmon, first to last SDU) = $exp SDUs, want ±$tol; the broadcaster sent $(_sv sent) in it (sequence numbers; the rest it never sent), longest wait $(_sv arrival_gap_ms_max) ms"
  within "$(_bv bad)" 0 0 && [ "$frames" -gt 0 ]
  check "decodes$c" $? "$frames frames, $(_bv bad) liblc3 refused, $(_bv concealed) concealed"
  python3 -S "$IN/analyze_tone.py" "$base.wav" > "$base.tone.txt" 2>&1
  fq=$(sed -n 's/^freq_hz=//p' "$base.tone.txt"); figure "freq_hz$g" "$fq"
  within "$fq" 431 449; check "frequency$c" $? "decoded tone $fq Hz, want 440 Hz ±2 %"
  # Clicks against the audio received (one a second of decoded audio); what is missing inside the capture's span
  # is the received check's business.
  BIS_SECS_RX=$((frames * dt / 1000000))
  within "$(_bv clicks)" $((BIS_SECS_RX - 1)) $((BIS_SECS_RX + 1)) && [ "$BIS_SECS_RX" -gt 0 ]
  check "clicks$c" $? "$(_bv clicks) clicks in ${BIS_SECS_RX} s received"
  figure "segments_good$g" "$(_bv segments_good)/$(_bv segments)"; figure "segment_corr_min$g" "$(_bv segment_corr_min)"
  # Every second of audio (click to click) must match the source; one spoiled second is tolerated because the
  # emulator under TCG can stall the whole VM for 100 ms or more when the host is busy (see resyncs).
  within "$(_bv segments_good)" "$(( $(_bv segments) - 1 ))" 99
  check "correlation$c" $? "$(_bv segments_good)/$(_bv segments) one-second segments correlate >= 0.99 with the source (whole capture $(_bv correlation))"
  within "$(_bv gaps)" 0 0; check "no-gaps$c" $? "$(_bv gaps) gaps in the received audio"
}
# bb_origin: CLOCK_MONOTONIC ns of the tone source's frame 0, from bluebridge.log.
bb_origin() { sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | sed -n 's/.*frame 0 captured at CLOCK_MONOTONIC \([0-9]*\) ns.*/\1/p' | head -1; }
# bb_delay_ms STATUS_JSON NAME: the output's delay as bluebridge accounts it (sink_reported_ms of `status --json`).
bb_delay_ms() {
  python3 -S -c 'import json,sys
for o in json.load(open(sys.argv[1]))["outputs"]:
    if o["name"] == sys.argv[2]: print(o["delay"]["sink_reported_ms"])' "$1" "$2" 2>/dev/null
}
# bis_timing TAG IDX DELAY_MS BUFFER_MS: when each click reached the sink controller hciIDX (btmon's kernel stamps
# of its ISO packets, iso_timing.py) against its play time minus DELAY_MS; checks timing-clicks (all but 2 of
# BIS_SECS_RX timed) and timing (p95 of |error| <= RIG_BCAST_TOL_MS, 10 ms). Writes $O/timing[-TAG].txt.
bis_timing() {
  local tag=$1 idx=$2 delay=$3 buf=$4 c="" g="" out origin rt
  [ -n "$tag" ] && { c="-$tag"; g="_$tag"; }
  out=$O/timing$c.txt
  origin=$(bb_origin)
  rt=$(python3 -S -c 'import time; print(time.time_ns() - time.monotonic_ns())')
  log "origin=$origin realtime-monotonic=$rt delay_ms=$delay"
  ISO_TIMING_SETTLE_S=${RIG_BCAST_SETTLE_S:-1.5} python3 -S "$IN/iso_timing.py" "$BTSNOOP" "$idx" "${origin:-0}" "$rt" "$buf" "${delay:-0}" \
    "${BIS_OCTETS:-100}" "${BIS_RATE:-48000}" "${BIS_DT_US:-10000}" > "$out" 2>&1
  grep -v '^click=' "$out"
  _tv() { sed -n "s/^$1=//p" "$out" | head -1; }
  figure "delay_ms$g" "$delay"; figure "timing_matched$g" "$(_tv matched)"
  figure "arrival_minus_play_ms_p50$g" "$(_tv arrival_minus_play_ms_p50)"
  figure "timing_error_ms_p50$g" "$(_tv error_ms_p50)"; figure "timing_error_ms_p95$g" "$(_tv error_ms_p95)"
  figure "timing_error_ms_max$g" "$(_tv error_ms_max)"
  # Clicks in the first 1.5 s of the capture are not counted (bluebridge's ISO clock probe, see iso_timing.py);
  # shown here so that what they were is on record.
  figure "timing_settling_clicks$g" "$(_tv settling_clicks)"; figure "timing_settling_error_ms_max$g" "$(_tv settling_error_ms_max)"
  # Tolerance 10 ms (p95 of |error|): SDUs are handed over when due on the 5 ms engine tick and the emulator adds
  # its transit (median +2.4 ms, p95 5.6 ms measured); a sender that ignored the presentation delay would be 40 ms
  # off, one that ignored the transport latency 20 ms.
  within "$(_tv matched)" $((BIS_SECS_RX - 2)) 999; check "timing-clicks$c" $? "$(_tv matched) clicks timed"
  within "$(_tv error_ms_p95)" 0 "${RIG_BCAST_TOL_MS:-10}"
  check "timing$c" $? "arrival - (play - ${delay} ms): p50 $(_tv error_ms_p50) ms, p95 |$(_tv error_ms_p95)| ms, max |$(_tv error_ms_max)| ms"
}

# ---- audio ----------------------------------------------------------------------------------------------------
# make_tone FILE FREQ SECS [RATE] [AMPLITUDE 0..1]: stereo S16_LE WAV sine (an integer FREQ repeats exactly
# every RATE/gcd(RATE, FREQ) samples: computing one block keeps this fast under TCG)
make_tone() {
  python3 -S - "$@" <<'PY'
import math, struct, sys, wave
path, freq, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 44100
amp = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
n = int(rate * secs)
block = rate // math.gcd(rate, int(freq)) if freq == int(freq) else n
block = min(block, n)
w = 2 * math.pi * freq / rate
one = b''.join(struct.pack('<hh', v, v) for v in (int(round(32767 * amp * math.sin(w * i))) for i in range(block)))
frames = (one * (n // block + 1))[: 4 * n]
with wave.open(path, 'wb') as f:
    f.setnchannels(2); f.setsampwidth(2); f.setframerate(rate); f.writeframes(frames)
PY
}
# analyze_tone WAV: prints KEY=VALUE lines: rate, total_s, active_s, freq_hz, rms_dbfs, peak_dbfs
# (active = from the first to the last sample above -40 dBFS on the left channel; frequency from interpolated
#  rising zero crossings across the active part, so dropped or repeated audio shows as a frequency error).
analyze_tone() { python3 -S "$IN/analyze_tone.py" "$@"; }

# ---- A2DP to BlueALSA sinks ---------------------------------------------------------------------------------------
# bb_stop PID: SIGTERM to bluebridge, waits up to 10 s; check clean-exit (exit status 0).
bb_stop() {
  local rc
  kill -TERM "$1"; t 10 sh -c "while kill -0 $1 2>/dev/null; do sleep 0.2; done"; wait "$1"; rc=$?
  check clean-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"
}

# a2dp_record SECS SRV ADDR NAME: one arecord of SECS s from BlueALSA service org.bluealsa.SRV (the source whose
# address is ADDR) to $O/sink-NAME.wav. BlueALSA's ALSA plug-in gives up starting a capture when its daemon answers late ("Couldn't
# start PCM: Input/output error"; seen under TCG in every a2dp run on 22 Nov): such a start is retried, at most
# twice, and counted (figure capture_retries_NAME). A capture that failed otherwise is left as it is for the judge.
a2dp_record() {
  local secs=$1 srv=$2 dev=$3 n=$4 try t0 rc
  for try in 0 1 2; do
    t0=$(cut -d' ' -f1 /proc/uptime)
    timeout -s INT -k 5 $((secs + 20)) arecord -D "bluealsa:DEV=$dev,PROFILE=a2dp,SRV=org.bluealsa.$srv" \
      -f S16_LE -c 2 -r 48000 -d "$secs" "$O/sink-$n.wav" > "$O/arecord-$n.log" 2>&1; rc=$?
    { [ $rc -ne 0 ] && grep -q "Couldn't start PCM" "$O/arecord-$n.log"; } || break
    cp "$O/arecord-$n.log" "$O/arecord-$n.try$try.log"
    echo "[$(cut -d' ' -f1 /proc/uptime)] arecord $n: BlueALSA did not start the capture ($(awk -v a="$t0" \
      -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s after launch); retrying"
    sleep 1
  done
  figure "capture_retries_$n" "$try"
  return $rc
}

# a2dp_capture SECS BB_PID SRV:IDX:NAME...: records SECS s at once from each BlueALSA sink service org.bluealsa.SRV,
# its PCM of the source on hciIDX (arecord, to $O/sink-NAME.wav; a BlueALSA PCM is named by the remote address
# only, so two sinks fed from one adapter need two bluealsa services); then checks bluebridge (BB_PID) still runs.
a2dp_capture() {
  local secs=$1 bb=$2 s i n srv dev pids=(); shift 2
  for s in "$@"; do
    IFS=: read -r srv i n <<<"$s"
    # The address is read here, one btmgmt at a time: two at once from the background came back empty in the VM.
    dev=$(addr "$i")
    [ -n "$dev" ] || log "a2dp_capture: no address for hci$i from btmgmt; the capture of $n will fail"
    a2dp_record "$secs" "$srv" "$dev" "$n" &
    pids+=($!)
  done
  wait "${pids[@]}"
  kill -0 "$bb" 2>/dev/null
  check bluebridge-alive $? "bluebridge still running after streaming"
}

# a2dp_judge SECS [SRV:IDX:]NAME...: judges each $O/sink-NAME.wav of SECS s with analyze_clicks.py: clicks-NAME
# (a click a second), correlation-NAME (every one-second segment but one correlates > 0.9 with the source),
# no-gaps-NAME; figures likewise.
a2dp_judge() {
  local secs=$1 s n; shift
  for s in "$@"; do
    n=${s##*:}
    python3 -S "$IN/analyze_clicks.py" "$O/sink-$n.wav" > "$O/analysis-$n.txt" 2>&1
    cat "$O/analysis-$n.txt"
    v() { sed -n "s/^$1=//p" "$O/analysis-$n.txt"; }
    figure "clicks_$n" "$(v clicks)"; figure "correlation_$n" "$(v correlation)"; figure "gaps_$n" "$(v gaps)"
    figure "spacing_err_us_max_$n" "$(v spacing_err_us_max)"
    within "$(v clicks)" $((secs - 2)) $((secs + 1)); check "clicks-$n" $? "$(v clicks) clicks in ${secs} s"
    figure "segments_good_$n" "$(v segments_good)/$(v segments)"; figure "segment_corr_min_$n" "$(v segment_corr_min)"
    # One spoiled second is tolerated: the emulator under TCG can stall the whole VM for a few hundred ms.
    within "$(v segments_good)" "$(( $(v segments) - 1 ))" 99; check "correlation-$n" $? \
      "$(v segments_good) of $(v segments) one-second segments correlate > 0.9 with the source (whole capture $(v correlation))"
    within "$(v gaps)" 0 0; check "no-gaps-$n" $? "$(v gaps) silent gaps > 10 ms"
  done
}
