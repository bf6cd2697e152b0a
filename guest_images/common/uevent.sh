#!/bin/sh
# Run by busybox `uevent` for every kernel uevent, with ACTION, SUBSYSTEM and
# DEVNAME in the environment. Reports block and usb ones on ttyS0 in one write.
case "$SUBSYSTEM" in
block | usb) echo "MUX-UEVENT $ACTION $SUBSYSTEM ${DEVNAME:--}" >/dev/ttyS0 ;;
esac
