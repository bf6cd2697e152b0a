#!/bin/sh
# mux-attention TEXT...: ask the host for attention ("the phone rings"). mux shows TEXT
# on its banner over whatever persona is active, publishes it over MQTT, and may switch
# here (see [display] on_attention). One line on ttyS0, as every report in lib.sh.
if [ $# -eq 0 ]; then
	echo "usage: mux-attention TEXT..." >&2
	exit 2
fi
echo "MUX-ATTENTION $*" >/dev/ttyS0
