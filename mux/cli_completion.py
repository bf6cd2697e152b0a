"""``mux completion bash|zsh|fish``: shell completion scripts, generated from mux's own parser.

Theory. There is one source of truth, the argparse parser (:func:`mux.cli.build_parser`):
:func:`tree` walks it into plain data (each command's subcommands, options, and what its
options' and positionals' values are: a fixed list of choices, a file, or free text) and
each shell's writer turns that data into a script. A command or option added to the
parser is in the next generated script with no list to keep by hand.

Every script does the same at completion time: it walks the words typed so far to find
the command path (``mux images build``), skipping each option and, when it takes one,
its value; the word under the cursor is then an option (it starts with ``-``), a value
of the option before it, a subcommand, or the next positional argument (one that takes
many, as ``mux replay FILE...``, takes every later word). bash and zsh share that walk
in shell code over ``case`` tables; fish's declarative ``complete`` lines use a helper
that finds the command path the same way.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mux.cli_common import add_command

SHELLS = ("bash", "zsh", "fish")
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_.,:+/=@-]+$")


@dataclass(frozen=True)
class Values:
    """What an option's or positional's values are: ``choices``, else a ``file``, else free text."""

    choices: tuple[str, ...] = ()
    file: bool = False


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    values: Values | None  # None: the option takes no value


@dataclass(frozen=True)
class Positional:
    help: str
    values: Values
    many: bool  # takes every later word (nargs *, + or REMAINDER)


@dataclass
class Command:
    """One command of the tree: ``path`` is ``("mux", "images", "build")``."""

    path: tuple[str, ...]
    help: str
    options: list[Option] = field(default_factory=list)
    positionals: list[Positional] = field(default_factory=list)
    commands: dict[str, Command] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def walk(self) -> Iterator[Command]:
        yield self
        for command in self.commands.values():
            yield from command.walk()


def _word(text: str) -> str:
    """A word that goes into a script unquoted; raises ValueError for anything else."""
    if not _SAFE_WORD.match(text):
        raise ValueError(f"completion: {text!r} cannot go into a completion script as it is")
    return text


def _values(action: argparse.Action) -> Values:
    if action.choices is not None and not isinstance(action.choices, dict):
        return Values(choices=tuple(_word(str(c)) for c in action.choices))
    return Values(file=action.type is Path)


def tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("mux",), help: str = "") -> Command:
    """The command tree of ``parser`` (argparse keeps it in ``_actions``: the only way in)."""
    command = Command(path, help or parser.description or "")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                command.commands[_word(name)] = tree(child, (*path, name), helps.get(name, ""))
        elif action.option_strings:
            command.options.append(Option(tuple(_word(f) for f in action.option_strings), action.help or "",
                                          None if action.nargs == 0 else _values(action)))
        else:
            many = action.nargs in ("*", "+", argparse.REMAINDER)
            command.positionals.append(Positional(action.help or "", _values(action), many))
    return command


# --- bash and zsh: the same walk over case tables ------------------------------------------


def _tables(root: Command, fn: str) -> str:
    """``fn PATH WHAT`` sets ``_mux_list`` for WHAT = commands, options, valued (the options
    that take a value), positionals ("N", or "N+" when the last takes many), or for the
    values of an option (WHAT = the option) or positional (WHAT = #INDEX): ``words ...``,
    ``files`` or ``none``."""
    cases: list[str] = []
    for c in root.walk():
        rows = {"commands": " ".join(c.commands),
                "options": " ".join(f for o in c.options for f in o.flags),
                "valued": " ".join(f for o in c.options if o.values for f in o.flags),
                "positionals": f"{len(c.positionals)}"
                               f"{'+' if c.positionals and c.positionals[-1].many else ''}"}
        for option in c.options:
            for flag in option.flags:
                if option.values is not None:
                    rows[flag] = _kind(option.values)
        for index, positional in enumerate(c.positionals):
            rows[f"#{index}"] = _kind(positional.values)
        cases += [f'        "{c.key}|{what}") _mux_list="{words}";;' for what, words in rows.items() if words]
    return "\n".join([f"{fn}() {{", '    case "$1|$2" in', *cases, '        *) _mux_list="";;', "    esac",
                      "}"])


def _kind(values: Values) -> str:
    return f"words {' '.join(values.choices)}" if values.choices else "files" if values.file else "none"


_WALK = """\
    # The command path, and how many positionals it has had, from the words before the cursor.
    local path=mux word expect="" pos=0 i={first} rest=0
    while (( i < {cword} )); do
        word=${{{words}[i]}}
        if [[ -n $expect ]]; then
            expect=""
        elif (( rest )) || [[ $word != -* ]]; then
            _mux_table "$path" commands
            if [[ $rest == 0 && " $_mux_list " == *" $word "* ]]; then
                path="$path $word"; pos=0
            else
                pos=$((pos + 1))
            fi
        elif [[ $word == -- ]]; then
            rest=1
        elif [[ $word != *=* ]]; then
            _mux_table "$path" valued
            [[ " $_mux_list " == *" $word "* ]] && expect=$word
        fi
        i=$((i + 1))
    done
    _mux_table "$path" commands
    local commands=$_mux_list
    if [[ -n $expect ]]; then
        _mux_table "$path" "$expect"
    elif [[ $cur == -* ]] && (( ! rest )); then
        _mux_table "$path" options
        _mux_list="words $_mux_list"
    elif [[ -n $commands ]]; then
        _mux_list="words $commands"
    else
        _mux_table "$path" positionals
        local count=${{_mux_list%+}}
        if [[ -n $count ]] && (( pos >= count )) && [[ $_mux_list == *+ ]]; then
            pos=$((count - 1))
        fi
        _mux_table "$path" "#$pos"
    fi
"""


def bash_script(root: Command) -> str:
    """The bash completion script for the tree: ``source <(mux completion bash)``."""
    walk = _WALK.format(first=1, cword="COMP_CWORD", words="COMP_WORDS")
    return f"""\
# bash completion for mux, generated from its own parser by `mux completion bash`.
# Load it now:      source <(mux completion bash)
# Load it always:   mux completion bash > ~/.local/share/bash-completion/completions/mux

{_tables(root, "_mux_table")}

_mux() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} _mux_list
    COMPREPLY=()
{walk}
    case $_mux_list in
        words\\ *) COMPREPLY=($(compgen -W "${{_mux_list#words }}" -- "$cur"));;
        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"));;
    esac
}}

complete -F _mux mux
"""


def zsh_script(root: Command) -> str:
    """The zsh completion script: ``source <(mux completion zsh)``, or saved as ``_mux``
    in a directory of ``$fpath``."""
    walk = _WALK.format(first=2, cword="CURRENT", words="words")
    described = "\n".join(
        f'        "{c.key}") _mux_described=({_zsh_commands(c)});;'
        for c in root.walk() if c.commands)
    return f"""\
#compdef mux
# zsh completion for mux, generated from its own parser by `mux completion zsh`.
# Load it now:      source <(mux completion zsh)
# Load it always:   mux completion zsh > "${{fpath[1]}}/_mux"   (then start a new zsh)

{_tables(root, "_mux_table")}

_mux_commands_described() {{
    case "$1" in
{described}
        *) _mux_described=();;
    esac
}}

_mux() {{
    local cur=${{words[CURRENT]}} _mux_list
    local -a _mux_described
{walk}
    if [[ -z $expect && $cur != -* && -n $commands ]]; then
        _mux_commands_described "$path"
        _describe -t commands "mux command" _mux_described
        return
    fi
    case $_mux_list in
        words\\ *) compadd -- ${{=${{_mux_list#words }}}};;
        files) _files;;
    esac
}}

if [[ ${{zsh_eval_context[-1]}} == loadautofunc ]]; then
    _mux "$@"
else
    compdef _mux mux
fi
"""


def _zsh_commands(command: Command) -> str:
    return " ".join(_zsh_quote(f"{name}:{sub.help}") for name, sub in command.commands.items())


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# --- fish: declarative lines with a helper that finds the command path ---------------------


def fish_script(root: Command) -> str:
    """The fish completion script: ``mux completion fish | source``, or saved as
    ``~/.config/fish/completions/mux.fish``."""
    commands = list(root.walk())
    valued = [f"{c.key}|{f}" for c in commands for o in c.options if o.values for f in o.flags]
    lines = [
        "# fish completion for mux, generated from its own parser by `mux completion fish`.",
        "# Load it now:      mux completion fish | source",
        "# Load it always:   mux completion fish > ~/.config/fish/completions/mux.fish",
        "",
        "set -g __mux_paths " + " ".join(_fish_quote(c.key) for c in commands),
        "set -g __mux_valued " + " ".join(_fish_quote(v) for v in valued),
        "",
        "function __mux_path --description 'the mux command path typed so far'",
        "    set -l path mux",
        "    set -l expect 0",
        "    set -l rest 0",
        "    for word in (commandline -opc)[2..-1]",
        "        if test $expect = 1",
        "            set expect 0",
        "        else if test $rest = 1; or not string match -q -- '-*' $word",
        "            if test $rest = 0; and contains -- \"$path $word\" $__mux_paths",
        "                set path \"$path $word\"",
        "            end",
        "        else if test $word = --",
        "            set rest 1",
        "        else if contains -- \"$path|$word\" $__mux_valued",
        "            set expect 1",
        "        end",
        "    end",
        "    echo $path",
        "end",
        "",
        "function __mux_at --description 'whether the mux command path typed so far is this one'",
        "    test (__mux_path) = \"$argv[1]\"",
        "end",
        "",
        "complete -c mux -e",
    ]
    for c in commands:
        at = f"-n {_fish_quote('__mux_at ' + _fish_quote(c.key))}"
        if c.commands or not any(p.values.file for p in c.positionals[:1]):
            lines.append(f"complete -c mux {at} -f")
        for name, sub in c.commands.items():
            lines.append(f"complete -c mux {at} -a {name} -d {_fish_quote(sub.help)}")
        if not c.commands and c.positionals and c.positionals[0].values.choices:
            p = c.positionals[0]
            lines.append(f"complete -c mux {at} -a {_fish_quote(' '.join(p.values.choices))}"
                         f" -d {_fish_quote(p.help)}")
        for option in c.options:
            flags = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in option.flags)
            value = ("" if option.values is None else
                     f" -x -a {_fish_quote(' '.join(option.values.choices))}" if option.values.choices else
                     " -r -F" if option.values.file else " -x")
            lines.append(f"complete -c mux {at} {flags}{value} -d {_fish_quote(option.help)}")
    return "\n".join(lines) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


WRITERS: dict[str, Callable[[Command], str]] = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``shell`` for ``parser``."""
    return WRITERS[shell](tree(parser))


def add_completion_parser(sub: Any, whole: Callable[[], argparse.ArgumentParser]) -> None:
    """Add ``completion`` to the ``mux`` command's subparsers; ``whole`` builds the parser
    whose script it prints."""
    p = add_command(sub, "completion", "print a shell completion script for mux (bash, zsh or fish)",
                    "Load it now with: source <(mux completion bash), source <(mux completion zsh) or"
                    " mux completion fish | source. To load it in every new shell, save it where the"
                    " shell looks: ~/.local/share/bash-completion/completions/mux (bash), a directory"
                    " of $fpath as _mux (zsh), ~/.config/fish/completions/mux.fish (fish).")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="the shell: bash, zsh or fish")
    p.set_defaults(func=lambda args: _print(script(whole(), args.shell)))


def _print(text: str) -> int:
    print(text, end="")
    return 0
