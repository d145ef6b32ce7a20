"""Man pages and bash completion made from the commands' own parsers (package build time).

``python3 -m cardume.cli.docgen --man-dir DIR --completion FILE`` writes one section 8 man
page per command of ``cardume.cli.main.FAMILIES`` and one bash completion script for all of
them. Both walk the same argparse parsers the commands run with, whose option help comes
from the operation table, so nothing is written twice. The CLI never imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from dataclasses import dataclass, field

from cardume import __version__, constants
from cardume.cli import main as cli_main

SECTION = "8"

# Positional arguments and options whose values are names the completion can list.
INSTANCE_ARGS = frozenset({"instance", "instances"})
NODE_ARGS = frozenset({"node", "nodes"})
NODE_OPTIONS = frozenset({"--node", "--primary-node", "--secondary-node", "--new-secondary",
                          "--target-node", "--src-node"})


@dataclass
class Command:
    """One subcommand (``words`` after the program name), its parser and what it takes."""

    words: tuple[str, ...]
    help: str
    parser: argparse.ArgumentParser
    aliases: tuple[str, ...] = ()
    options: list[argparse.Action] = field(default_factory=list)
    positionals: list[argparse.Action] = field(default_factory=list)


def family_parser(prog: str) -> argparse.ArgumentParser:
    """The whole parser of a command, every subcommand built (as for ``--help``)."""
    module = importlib.import_module(cli_main.FAMILIES[prog])
    return cli_main._parser(prog, module, None)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[Command]:
    """Every subcommand under ``parser``, nested ones (``cardume vcluster up``) included,
    each once with its aliases."""
    sub = _subparsers(parser)
    if sub is None:
        return []
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    names: dict[int, list[str]] = {}
    parsers: dict[int, argparse.ArgumentParser] = {}
    for name, child in sub.choices.items():
        names.setdefault(id(child), []).append(name)
        parsers[id(child)] = child
    found: list[Command] = []
    for key, (name, *aliases) in names.items():
        child = parsers[key]
        cmd = Command(words + (name,), helps.get(name, ""), child, tuple(aliases))
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.option_strings:
                cmd.options.append(action)
            else:
                cmd.positionals.append(action)
        found.append(cmd)
        found.extend(commands(child, cmd.words))
    return found


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar) if not isinstance(action.metavar, tuple) \
            else " ".join(action.metavar)
    if action.choices is not None and not action.option_strings:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest.upper()


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    formatter = parser.formatter_class(prog=parser.prog)
    return " ".join(formatter._expand_help(action).split())


def _positional_usage(action: argparse.Action) -> str:
    name = _metavar(action)
    if action.nargs == "?":
        return f"[{name}]"
    if action.nargs == "*":
        return f"[{name}...]"
    if action.nargs == "+":
        return f"{name}..."
    return name


# --- man pages ------------------------------------------------------------------------------

def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no control character
    at the start of the line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _breakable(text: str) -> str:
    """Roff text whose long words (``N:size=SIZE[,mode=ro|rw]...``) may break after a
    comma, a bar or a bracket, where troff could not break them otherwise."""
    return " ".join(re.sub(r"([,|\]])", r"\1\\:", word) if len(word) > 30 else word
                    for word in _roff(text).split(" "))


def _summary(module_doc: str | None) -> str:
    """The NAME line: the docstring's first sentence without the ``prog:`` before it."""
    text = " ".join((module_doc or "").strip().split("\n\n")[0].split())
    text = re.sub(r"^\S+:\s+", "", text)
    return re.split(r"(?<=[^.])\.(?:\s|$)", text, maxsplit=1)[0].strip()


def manpage(prog: str, parser: argparse.ArgumentParser | None = None,
            version: str = __version__) -> str:
    parser = parser or family_parser(prog)
    cmds = commands(parser)
    title = _roff(prog.upper())
    lines = [
        f'.TH {title} {SECTION} "" "cardume {version}" "cardume manual"',
        ".nh", ".ad l",  # no hyphenation, ragged right: option names stay whole
        ".SH NAME",
        f"{_roff(prog)} \\- {_roff(_summary(parser.description))}",
        ".SH SYNOPSIS",
        f".B {_roff(prog)}",
        ".I command",
        "[\\fIoptions\\fR] [\\fIarguments\\fR]",
        ".SH DESCRIPTION",
        _roff(" ".join((parser.description or "").split())),
        ".PP",
        "Every command takes \\fB\\-h\\fR (\\fB\\-\\-help\\fR), which prints its options.",
        ".SH COMMANDS",
    ]
    for cmd in cmds:
        if _subparsers(cmd.parser) is not None and not cmd.options[1:]:
            lines += [f".SS {_roff(' '.join(cmd.words))}", _roff(cmd.help)]
            continue
        usage = " ".join(_positional_usage(a) for a in cmd.positionals)
        lines += [f".SS {_roff(' '.join(cmd.words))}",
                  f".B {_roff(' '.join((prog, *cmd.words)))}",
                  "[\\fIoptions\\fR]" + (f" \\fI{_roff(usage)}\\fR" if usage else ""),
                  ".PP", _roff(cmd.help[:1].upper() + cmd.help[1:]) if cmd.help else ""]
        if cmd.aliases:
            lines += [".PP", "Also called: " + ", ".join(
                f"\\fB{_roff(a)}\\fR" for a in cmd.aliases) + "."]
        for action in cmd.options:
            if action.help == argparse.SUPPRESS or "-h" in action.option_strings:
                continue
            value = f" \\fI{_roff(_metavar(action))}\\fR" if _takes_value(action) else ""
            names = ", ".join(f"\\fB{_roff(o)}\\fR{value}" for o in action.option_strings)
            lines += [".TP", names, _breakable(_help(cmd.parser, action)) or "\\&"]
            if action.choices is not None:
                lines += [".br", "One of: " + ", ".join(_roff(str(c)) for c in action.choices)
                          + "."]
    lines += [".SH FILES",
              ".TP", "\\fI/var/lib/cardume\\fR", "the node's state",
              ".TP", "\\fI/etc/cardume\\fR", "settings",
              ".TP", "\\fI/var/log/cardume\\fR", "logs",
              ".TP", "\\fI/run/cardume\\fR", "runtime files: the master's socket, pid files",
              ".SH SEE ALSO",
              ", ".join(f"\\fB{_roff(other)}\\fR({SECTION})"
                        for other in cli_main.FAMILIES if other != prog) + "."]
    return "\n".join(line for line in lines if line != "") + "\n"


# --- bash completion ------------------------------------------------------------------------

# Values checked after parsing (so that argparse's message is not the one shown), which
# the completion can still offer.
KNOWN_VALUES = {"disk_template": constants.DISK_TEMPLATES,
                "hypervisor": constants.HYPER_TYPES}


def _value_kind(cmd: Command, action: argparse.Action) -> str:
    if action.choices is not None:
        return " ".join(map(str, action.choices))
    if action.dest in KNOWN_VALUES and action.nargs is None:
        return " ".join(KNOWN_VALUES[action.dest])
    if any(o in NODE_OPTIONS for o in action.option_strings):
        return "@node"
    if action.dest.endswith("_file") or str(action.metavar or "").upper() in ("FILE", "PATH"):
        return "@file"
    return "@any"


def _positional_kind(prog: str, cmd: Command) -> str:
    if cmd.words[-1:] in (("add",), ("batch-create",)):
        return ""  # a new name: nothing to offer
    for action in cmd.positionals:
        dest = action.dest
        if dest == "names" and prog in ("gnt-instance", "gnt-node"):
            dest = prog.removeprefix("gnt-")
        if dest in INSTANCE_ARGS:
            return "@instance"
        if dest in NODE_ARGS:
            return "@node"
    return ""


def _bash_word(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9@%+,./:=_ -]*", text):
        raise ValueError(f"cannot put {text!r} in the completion script")
    return f'"{text}"'


def completion(progs: list[str] | None = None) -> str:
    progs = list(cli_main.FAMILIES) if progs is None else progs
    subs: dict[str, list[str]] = {}
    opts: dict[str, list[str]] = {}
    vals: dict[str, str] = {}
    pos: dict[str, str] = {}
    for prog in progs:
        parser = family_parser(prog)
        for cmd in commands(parser):
            key = " ".join((prog, *cmd.words))
            parent = " ".join((prog, *cmd.words[:-1]))
            subs.setdefault(parent, []).extend((cmd.words[-1], *cmd.aliases))
            if _subparsers(cmd.parser) is not None:
                continue
            keys = [key] + [" ".join((prog, *cmd.words[:-1], a)) for a in cmd.aliases]
            for k in keys:
                opts[k] = [o for a in cmd.options for o in a.option_strings]
                for action in cmd.options:
                    if _takes_value(action):
                        for option in action.option_strings:
                            vals[f"{k} {option}"] = _value_kind(cmd, action)
                kind = _positional_kind(prog, cmd)
                if kind:
                    pos[k] = kind

    def table(name: str, items: dict[str, str]) -> list[str]:
        return [f"_cardume_{name}=("] + [
            f"  [{_bash_word(k)}]={_bash_word(v)}" for k, v in sorted(items.items())] + [")"]

    out = [
        "# bash completion for cardume's commands: " + " ".join(progs),
        f"# generated from their parsers by cardume.cli.docgen (cardume {__version__});"
        " do not edit",
        "declare -gA _cardume_subs _cardume_opts _cardume_vals _cardume_pos",
        *table("subs", {k: " ".join(v) for k, v in subs.items()}),
        *table("opts", {k: " ".join(v) for k, v in opts.items()}),
        *table("vals", vals),
        *table("pos", pos),
        BASH_FUNCTIONS.strip(),
        "complete -F _cardume " + " ".join(progs),
    ]
    return "\n".join(out) + "\n"


BASH_FUNCTIONS = r"""
# Names known to this node: nodes from its ssconf copy (any node), instances from the
# master (elsewhere the command fails at once and nothing is offered).
_cardume_names() {
  case $1 in
    @node)
      local ssconf=/var/lib/cardume/ssconf.json
      [[ -r $ssconf ]] && python3 -c 'import json,sys
print("\n".join(json.load(open(sys.argv[1])).get("nodes", {})))' "$ssconf" 2>/dev/null ;;
    @instance)
      timeout 3 gnt-instance list --no-headers -o name 2>/dev/null ;;
  esac
}

_cardume() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local key=${COMP_WORDS[0]##*/} i=1 word
  COMPREPLY=()
  # walk down the subcommands already typed (cardume vcluster up, gnt-instance add)
  while (( i < COMP_CWORD )) && [[ -n ${_cardume_subs[$key]+set} ]]; do
    word=${COMP_WORDS[i]}
    [[ " ${_cardume_subs[$key]} " == *" $word "* ]] || break
    key="$key $word"
    (( i++ ))
  done
  if [[ -n ${_cardume_subs[$key]+set} ]]; then
    (( i == COMP_CWORD )) &&
      mapfile -t COMPREPLY < <(compgen -W "${_cardume_subs[$key]} --help" -- "$cur")
    return 0
  fi
  local kind=${_cardume_vals["$key $prev"]-}
  if [[ $prev == -* && -n ${_cardume_vals["$key $prev"]+set} ]]; then
    case $kind in
      @any) ;;
      @file) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
      @node|@instance) mapfile -t COMPREPLY < <(compgen -W "$(_cardume_names "$kind")" -- "$cur") ;;
      *) mapfile -t COMPREPLY < <(compgen -W "$kind" -- "$cur") ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_cardume_opts[$key]-}" -- "$cur")
    return 0
  fi
  kind=${_cardume_pos[$key]-}
  [[ -n $kind ]] && mapfile -t COMPREPLY < <(compgen -W "$(_cardume_names "$kind")" -- "$cur")
  return 0
}
"""


def write_all(man_dir: str, completion_file: str) -> list[str]:
    """Write every man page and the completion script; the paths written."""
    os.makedirs(man_dir, exist_ok=True)
    written = []
    for prog in cli_main.FAMILIES:
        path = os.path.join(man_dir, f"{prog}.{SECTION}")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(manpage(prog))
        written.append(path)
    os.makedirs(os.path.dirname(completion_file) or ".", exist_ok=True)
    with open(completion_file, "w", encoding="utf-8") as handle:
        handle.write(completion())
    written.append(completion_file)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m cardume.cli.docgen",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--man-dir", required=True, help="where the man pages go")
    parser.add_argument("--completion", required=True, help="the completion script to write")
    args = parser.parse_args(argv)
    for path in write_all(args.man_dir, args.completion):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
