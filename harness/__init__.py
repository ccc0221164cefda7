"""The one harness of the tests (``tests/``) and the benchmark (``bench/``): real SIP phones
(baresip driven over ctrl_tcp, sipp running scripted scenarios) on loopback with ephemeral
ports, ``hookswitch serve`` as a real process, and a webhook receiver. See baresip.py and
sipp.py for the phones; fixtures.py has pytest fixtures that start phones and always kill
them."""

from .baresip import Baresip, sdp_direction, write_tone_wav
from .ports import free_tcp_port, free_udp_port, free_udp_port_pair
from .siplog import SipMessage, parse_baresip_trace, parse_sipp_log
from .sipp import SCENARIOS, SippProcess, sipp_register
from .wait import WaitTimeout, wait_until

__all__ = [
    "SCENARIOS",
    "Baresip",
    "SipMessage",
    "SippProcess",
    "WaitTimeout",
    "free_tcp_port",
    "free_udp_port",
    "free_udp_port_pair",
    "parse_baresip_trace",
    "parse_sipp_log",
    "sdp_direction",
    "sipp_register",
    "wait_until",
    "write_tone_wav",
]
