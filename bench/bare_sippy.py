"""sippy's own ``b2bua_simple``, unchanged, with one UDP worker as hookswitch runs sippy.

    python -m bench.bare_sippy -f -l 127.0.0.1 -p PORT -n 127.0.0.1:CALLEE_PORT

With sippy's default of several receive workers a 180 can be handed to the B2BUA after
the 200 that followed it (SIP-NOTES.md); the callee's late 180 then reaches the caller
after the 200 and sipp fails that call. hookswitch sets ``nworkers = 1`` for this reason,
so the baseline gets the same setting.
"""

from __future__ import annotations

from sippy import b2bua_simple
from sippy.Udp_server import Udp_server_opts


def main() -> None:
    Udp_server_opts.nworkers = 1
    b2bua_simple.main_func()


if __name__ == "__main__":
    main()
