# Turn kprobe trace lines from /sys/kernel/tracing/trace_pipe into MUX-KEY, MUX-LED
# and MUX-PTR lines.  A line looks like:
#   sh-85 [000] d.h2. 12.345678: key: (kbd_event+0x4/0x100) type=1 code=30 value=1
# EV_KEY (type 1) -> "MUX-KEY <code> <value>".
# EV_LED (type 17, code 0 num, 1 caps, 2 scroll) -> the whole LED state, printed
# only when it changes (a brightness write may repeat the current value).
# ptr events (mousedev_event): ABS_X/ABS_Y (0..32767 from QEMU's usb-tablet) and mouse
# buttons are collected, and at EV_SYN "MUX-PTR <x> <y> <buttons>" is printed if they
# changed: x and y in framebuffer pixels (0..width-1), buttons a bit mask (1 left,
# 2 right, 4 middle).
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
	fb_w = 1024; fb_h = 768
	if ((getline size < "/sys/class/graphics/fb0/virtual_size") > 0) {
		split(size, wh, ",")
		if (wh[1] + 0 > 0) { fb_w = wh[1] + 0; fb_h = wh[2] + 0 }
	}
	close("/sys/class/graphics/fb0/virtual_size")
	abs_x = -1; abs_y = -1; buttons = 0; shown = ""
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
	if ($0 ~ / ptr: /) {
		if (type == "3" && code == "0") abs_x = value + 0
		else if (type == "3" && code == "1") abs_y = value + 0
		else if (type == "1") {
			# (busybox awk has no ^: no math support)
			if (code == "272") bit = 1
			else if (code == "273") bit = 2
			else if (code == "274") bit = 4
			else next
			if (value + 0) { if (int(buttons / bit) % 2 == 0) buttons += bit }
			else if (int(buttons / bit) % 2 == 1) buttons -= bit
		} else if (type == "0" && abs_x >= 0 && abs_y >= 0) {
			now = int(abs_x * (fb_w - 1) / 32767 + 0.5) " " int(abs_y * (fb_h - 1) / 32767 + 0.5) " " buttons
			if (now != shown) {
				shown = now
				print "MUX-PTR " now
				fflush()
			}
		}
		next
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
