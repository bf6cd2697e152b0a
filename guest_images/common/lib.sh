# mux guest library: sourced by /init of every built-in image (busybox ash).
#
# The contract with the host (all on ttyS0, one line per write, nothing else):
#   MUX-READY <persona>                          the guest is up
#   MUX-KEY <code> <value>                       every EV_KEY the keyboard delivers
#   MUX-PTR <x> <y> <buttons>                    an absolute pointer (usb-tablet) moved or
#                                                clicked: framebuffer pixels, buttons 1 left
#                                                + 2 right + 4 middle
#   MUX-LED caps=<0|1> num=<0|1> scroll=<0|1>    keyboard LEDs, at start and on change
#   MUX-UEVENT <action> <subsystem> <devname>    block and usb uevents ("-" = no devname)
#   MUX-ATTENTION <text>                         the guest asks for attention (mux-attention)
#
# Key and LED events come from kprobe trace events (mux_start_input_reporter,
# input.awk): busybox has no evtest, this kernel has no evbug, and od/hexdump of
# /dev/input/event* piped into awk sits in stdio buffers until 4 KiB pile up.

MUX_TTY=/dev/ttyS0
MUX_PERSONA=guest
MUX_COLOR=000000

# Mount the kernel filesystems, silence the kernel, read mux.* from the command line.
mux_boot() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /run /tmp
	mount -t devpts devpts /dev/pts
	# Only emergencies may reach a console; keeps ttyS0 parseable, tty1 clean.
	echo 1 >/proc/sys/kernel/printk
	# No modprobe in here: the kernel must not spawn one for crypto aliases.
	echo >/proc/sys/kernel/modprobe
	for arg in $(cat /proc/cmdline); do
		case "$arg" in
		mux.persona=?*) MUX_PERSONA="${arg#mux.persona=}" ;;
		mux.color=*) MUX_COLOR="${arg#mux.color=}" ;;
		mux.debug) exec 2>"$MUX_TTY" && set -x ;;
		esac
	done
	MUX_COLOR="${MUX_COLOR#\#}"
	case "$MUX_COLOR" in
	[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]) ;;
	*) MUX_COLOR=000000 ;;
	esac
	export MUX_PERSONA MUX_COLOR
	hostname "$MUX_PERSONA"
	stty -F "$MUX_TTY" -echo 2>/dev/null
}

# Say one line on ttyS0 (echo is a single write, so lines never interleave).
mux_say() {
	echo "$*" >"$MUX_TTY"
}

# Paint tty1: palette entry 0 (the default background) becomes colour $1 and
# entry 7 (the default foreground) white, then clear so every cell is redrawn.
mux_paint() {
	printf '\033]P0%s\033]P7ffffff\033[0m\033[H\033[2J' "$1" >/dev/tty1
}

# Report key and LED events through two kprobe trace events, filtered in the kernel:
#  - mux/key on kbd_event(handle, type, code, value), the VT keyboard handler, for
#    EV_KEY (1): it sees exactly what the input core delivers to handlers;
#  - mux/led on input_inject_event(handle, type, code, value) for EV_LED (17): the
#    LED class (kbd-* triggers, sysfs brightness writes) sets keyboard LEDs through
#    it. (Handlers only see EV_LED at the next EV_SYN, i.e. the next key press.)
#  - mux/ptr on mousedev_event(handle, type, code, value), the mousedev handler, which
#    sees only pointers (the usb-tablet), not every key as input_event (the fallback,
#    where drivers hand in events) does, for EV_ABS (3), the mouse buttons (EV_KEY
#    0x110..0x117) and EV_SYN (0): a frame is reported at its SYN when the pointer
#    changed.
# awk turns trace_pipe into MUX-KEY / MUX-LED / MUX-PTR lines.
mux_start_input_reporter() {
	t=/sys/kernel/tracing
	mount -t tracefs tracefs "$t" 2>/dev/null
	if ! {
		echo 'p:mux/key kbd_event type=%si:u32 code=%dx:u32 value=%cx:s32' >"$t/kprobe_events" &&
			echo 'p:mux/led input_inject_event type=%si:u32 code=%dx:u32 value=%cx:s32' >>"$t/kprobe_events" &&
			echo 'type == 1' >"$t/events/mux/key/filter" &&
			echo 'type == 17' >"$t/events/mux/led/filter"
	}; then
		mux_say "MUX-ERROR no key/LED reports: cannot set kprobes in $t"
		return 1
	fi
	# The pointer probe is apart: if neither function can be probed, keys and LEDs still are.
	for f in mousedev_event input_event; do
		echo "p:mux/ptr $f type=%si:u32 code=%dx:u32 value=%cx:s32" >>"$t/kprobe_events" 2>/dev/null &&
			echo 'type == 0 || type == 3 || (type == 1 && code >= 272 && code < 280)' \
				>"$t/events/mux/ptr/filter" && break
	done
	[ -d "$t/events/mux/ptr" ] || mux_say "MUX-ERROR no pointer reports: cannot set a kprobe in $t"
	if ! { echo 1 >"$t/events/mux/enable" && echo 1 >"$t/tracing_on"; }; then
		mux_say "MUX-ERROR no key/LED reports: cannot enable tracing in $t"
		return 1
	fi
	awk -f /lib/mux/input.awk "$t/trace_pipe" >"$MUX_TTY" 2>/dev/null &
	# usbhid polls a device (here the usb-tablet) only while someone has it open, and
	# this image has no evdev: reading the mousedev mixer opens every mouse, now and later
	# (and mousedev_event above sees their events).
	cat /dev/input/mice >/dev/null 2>&1 &
}

# Report block and usb uevents; then load the recipe's modules (in dependency
# order, computed at build time) so their devices are announced too.
mux_start_uevent_reporter() {
	uevent /lib/mux/uevent.sh >/dev/null 2>&1 &
}

mux_load_modules() {
	[ -f /etc/mux/modules ] || return 0
	while read -r name path; do
		insmod "$path" 2>/dev/null
	done </etc/mux/modules
}

# PID 1 must never exit; reap whatever is reparented to it.
mux_idle() {
	while :; do
		sleep 3600
		wait
	done
}
