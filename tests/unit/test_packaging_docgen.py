"""The man pages and the bash completion generated from the commands' parsers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cardume.cli import docgen
from cardume.cli.main import FAMILIES


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docgen")
    docgen.write_all(str(out / "man"), str(out / "cardume"))
    return out


def _render(page: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("prog", sorted(FAMILIES))
def test_man_page_renders_without_warnings_and_names_every_subcommand(
        generated: Path, prog: str) -> None:
    page = generated / "man" / f"{prog}.8"
    done = _render(page)
    assert done.returncode == 0
    assert done.stderr == ""
    # no overstrike (bold by backspaces), plain hyphens
    text = re.sub(".\b", "", done.stdout).replace("\u2010", "-").replace("\u2212", "-")
    assert "NAME" in text and "SYNOPSIS" in text
    for cmd in docgen.commands(docgen.family_parser(prog)):
        assert f"   {' '.join(cmd.words)}\n" in text  # the subsection's title
        for action in cmd.options:
            if action.help:
                assert action.option_strings[-1] in text


def test_option_help_comes_from_the_parser(generated: Path) -> None:
    page = (generated / "man" / "gnt-instance.8").read_text()
    assert ".SS add" in page
    assert "\\fB\\-\\-disk\\-template\\fR \\fIDISK_TEMPLATE\\fR" in page


def _complete(script: Path, *words: str) -> list[str]:
    """What the completion offers for the last word, as bash's programmable completion
    would call it (COMP_WORDS, COMP_CWORD)."""
    quoted = " ".join(f"'{w}'" for w in words)
    probe = (f'source "{script}"; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; '
             'COMPREPLY=(); "$(complete -p "${COMP_WORDS[0]}" | sed "s/.*-F \\([^ ]*\\).*/\\1/")"; '
             'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", probe], capture_output=True,
                          text=True, timeout=30, check=True)
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


def _common_prefix(words: list[str]) -> str:
    return os.path.commonprefix(words) if words else ""


def test_completion_of_subcommands_and_options(generated: Path) -> None:
    script = generated / "cardume"
    found = _complete(script, "gnt-instance", "ad")
    assert "add" in found and _common_prefix(found) == "add"  # bash then types "add"
    assert _complete(script, "gnt-instance", "add", "--disk-t") == ["--disk-template"]
    assert "drbd" in _complete(script, "gnt-instance", "add", "--disk-template", "")
    assert _complete(script, "gnt-cluster", "master-f") == ["master-failover"]
    assert _complete(script, "cardume", "vcluster", "u") == ["up"]
    assert _complete(script, "gnt-node", "list", "--no-h") == ["--no-headers"]
    assert _complete(script, "gnt-instance", "start", "--priority", "h") == ["high"]


def test_completion_names_every_command(generated: Path) -> None:
    text = (generated / "cardume").read_text()
    complete_line = [line for line in text.splitlines() if line.startswith("complete ")]
    assert complete_line == ["complete -F _cardume " + " ".join(FAMILIES)]


def test_commands_never_import_the_generator() -> None:
    probe = ("import sys\nfrom cardume.cli import main\n"
             "sys.argv = ['gnt-instance', '--help']\n"
             "try:\n    main.gnt_instance()\nexcept SystemExit:\n    pass\n"
             "print('cardume.cli.docgen' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
