"""sippy must be imported first in the SIP thread (sip/thread.py): nothing the server
imports at start-up may pull it into the main thread, or every hand-off to the SIP thread
waits for the loop's 10 ms tick."""

from __future__ import annotations

import subprocess
import sys


def test_server_and_cli_import_no_sippy_in_the_main_thread() -> None:
    probe = (
        "import sys, hookswitch.cli, hookswitch.server, hookswitch.api.app; "
        "print(sorted(m for m in sys.modules if m.startswith('sippy')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
