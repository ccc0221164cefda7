"""Real SIP phones for tests: baresip (a softphone driven over ctrl_tcp) and sipp (scripted
SIP scenarios), on loopback with ephemeral ports. See baresip.py and sipp.py for details;
fixtures.py has pytest fixtures that start phones and always kill them."""

from .baresip import Baresip, sdp_direction, write_tone_wav
from .ports import free_tcp_port, free_udp_port, free_udp_port_pair
from .sipp import SCENARIOS, SipMessage, SippProcess, parse_message_log, sipp_register
from .wait import wait_until

__all__ = [
    "SCENARIOS",
    "Baresip",
    "SipMessage",
    "SippProcess",
    "free_tcp_port",
    "free_udp_port",
    "free_udp_port_pair",
    "parse_message_log",
    "sdp_direction",
    "sipp_register",
    "wait_until",
    "write_tone_wav",
]
