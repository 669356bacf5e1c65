# rig: about=mixed with a Sendspin source: the reference server (aiosendspin 10.2.1, in the guest on loopback, encrypted) streams the test signal to two bluebridge players, an A2DP output (sink on hci1, Delay 150 ms) and a broadcast output (isotest on hci2); clicks timed at each sink against the server's play time minus that output's delay, and the skew
# rig: controllers=4
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: timeout=600
# rig: bin=required
# rig: sendspin=yes
# rig: default=no
# rig: figures=timing-a2dp,arrival-a2dp,received-bcast,no-gaps-bcast,timing-bcast,timing-clicks-bcast,both-timed
# rig: retry=1

# The "Sendspin source feeds an A2DP sink and a broadcast sink": scenario mixed (see its header) with
# MIXED_SOURCE=sendspin. The host mounts the aiosendspin venv as a second, read-only 9p share (scripts/rig builds it
# with scripts/sendspin-server-setup when missing); the checks are mixed's, plus sendspin-venv, sendspin-server,
# sendspin-player-speaker, sendspin-player-auracast and sendspin-clicks.
MIXED_SOURCE=sendspin
. "$IN/scenarios/mixed.sh"
