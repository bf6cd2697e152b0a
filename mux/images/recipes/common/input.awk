# Turn kprobe trace lines from /sys/kernel/tracing/trace_pipe into MUX-KEY and
# MUX-LED lines.  A line looks like:
#   sh-85 [000] d.h2. 12.345678: key: (kbd_event+0x4/0x100) type=1 code=30 value=1
# EV_KEY (type 1) -> "MUX-KEY <code> <value>".
# EV_LED (type 17, code 0 num, 1 caps, 2 scroll) -> the whole LED state, printed
# only when it changes (a brightness write may repeat the current value).
# stdout is ttyS0 (a tty, so line buffered) and fflush() follows every line: each
# report is one write(2), which the tty layer never interleaves with another.

function led_read(name,    file, v) {
	file = "/sys/class/leds/" leddev "::" name "/brightness"
	v = 0
	if ((getline v < file) > 0)
		close(file)
	return (v + 0) ? 1 : 0
}

function led_report() {
	last = caps num scroll
	print "MUX-LED caps=" caps " num=" num " scroll=" scroll
	fflush()
}

BEGIN {
	leddev = "input0"
	cmd = "ls -d /sys/class/leds/*::capslock 2>/dev/null"
	if ((cmd | getline path) > 0) {
		sub(/^\/sys\/class\/leds\//, "", path)
		sub(/::capslock$/, "", path)
		leddev = path
	}
	close(cmd)
	caps = led_read("capslock")
	num = led_read("numlock")
	scroll = led_read("scrolllock")
	led_report()
}

{
	type = ""; code = ""; value = ""
	for (i = NF; i > 0; i--) {
		if ($i ~ /^type=/) type = substr($i, 6)
		else if ($i ~ /^code=/) code = substr($i, 6)
		else if ($i ~ /^value=/) value = substr($i, 7)
	}
	if (type == "1") {
		print "MUX-KEY " code " " value
		fflush()
	} else if (type == "17") {
		on = (value + 0) ? 1 : 0
		if (code == "0") num = on
		else if (code == "1") caps = on
		else if (code == "2") scroll = on
		else next
		if (caps num scroll != last) led_report()
	}
}
