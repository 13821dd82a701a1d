"""`classroom --help` lists every command once, in the group an operator or a developer looks in."""

from __future__ import annotations

import subprocess
import sys

from services.cli.main import COMMANDS, GROUPS


def test_every_command_is_in_exactly_one_group():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(COMMANDS) and len(grouped) == len(set(grouped))


def test_help_shows_the_groups_in_order_and_needs_no_torch():
    code = (
        "import contextlib, io, sys\nfrom services.cli.main import main\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(out.getvalue()); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    text, torch_loaded = done.stdout.rsplit("\n", 2)[0], done.stdout.strip().splitlines()[-1]
    positions = [text.index(f"{group}:") for group in GROUPS]
    assert positions == sorted(positions)
    assert text.index("  demo ") < text.index("diagnostics:") < text.index("  bench ")
    assert torch_loaded == "False"
