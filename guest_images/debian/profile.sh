# mux (/etc/profile.d/mux.sh), read by login shells.
# On tty1 the first shell tells the host it is ready for keys: "MUX-READY <persona>" on
# ttyS0 once readline has taken the terminal (canonical mode off), so text typed from
# then on is echoed by readline after the prompt, never by the tty before it.
# On ttyS0 the prompt ends with a newline, so reports never share a line with it.
case "$(tty 2>/dev/null)" in
/dev/tty1)
	if [ -n "$BASH_VERSION" ] && mkdir -p /run/mux && mkdir /run/mux/ready 2>/dev/null; then
		color=$(cat /run/mux/color 2>/dev/null)
		case "$color" in
		[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F])
			printf '\033]P0%s\033]P7ffffff\033[0m\033[H\033[2J' "$color" ;;
		esac
		( (
			persona=$(cat /run/mux/persona 2>/dev/null || echo debian)
			tries=0  # at most about 30 s: a shell without readline never leaves icanon
			while [ "$tries" -lt 600 ] && stty -F /dev/tty1 -a 2>/dev/null | grep -q ' icanon'; do
				sleep 0.05
				tries=$((tries + 1))
			done
			echo "MUX-READY $persona" >/dev/ttyS0
		) </dev/null >/dev/null 2>&1 & )
	fi
	;;
/dev/ttyS0)
	PS1='\u@\h:\w\$\n'
	bind 'set enable-bracketed-paste off' 2>/dev/null
	;;
esac
