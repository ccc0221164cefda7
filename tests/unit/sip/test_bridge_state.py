"""The bridge state machine: every row of the transition table, and illegal pairs change
nothing. No sippy, no sockets: machines are driven with named inputs only."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    HoldChanged,
    TransferAsked,
    UserPickedUp,
)
from hookswitch.calls.ids import CallId
from hookswitch.calls.leg import HangupReason, Side
from hookswitch.sip.bridge_state import (
    CALLER,
    TRANSITIONS,
    AcceptLateOffer,
    Action,
    Adopt,
    Answered,
    BecomeCaller,
    BridgeInput,
    BridgeMachine,
    BridgeState,
    CallDevice,
    CallFork,
    DialTargets,
    Direction,
    Disconnect,
    EndCall,
    Failed,
    Finished,
    HandOver,
    HoldSide,
    HungUp,
    IllegalTransition,
    InputKind,
    Peer,
    Referred,
    Refuse,
    RefuseCaller,
    Relay,
    Release,
    Reoffer,
    ReofferCaller,
    Reoffered,
    Report,
    ResumeSide,
    RingDevices,
    Ringing,
    Role,
    SaveDialogs,
    StartTimer,
    StopTimer,
    TakeOver,
    Target,
    TimedOut,
    Timer,
    TransferTo,
)

S, K = BridgeState, InputKind
CALL = CallId("call-1")
_clock = itertools.count(1_000)


def at() -> int:
    return next(_clock)


def device(number: int) -> Peer:
    return Peer(Role.DEVICE, number)


def fork(number: int) -> Peer:
    return Peer(Role.FORK, number)


def targets(count: int) -> tuple[Target, ...]:
    return tuple(Target(next_hop=("127.0.0.1", 5070 + n), contact=f"sip:dev{n}@127.0.0.1")
                 for n in range(count))


def dial(count: int = 2) -> DialTargets:
    return DialTargets(at_us=at(), targets=targets(count), caller_number="210",
                       caller_name="Jane Doe", callee_number="200", ring_timeout=60)


def click_to_dial(devices: int = 2) -> BridgeMachine:
    machine, _ = BridgeMachine.click_to_dial(CALL, RingDevices(
        at_us=at(), devices=targets(devices), display_name="(pick up to call)",
        shown_number="200", auto_answer=False, timeout=30))
    return machine


def fed(machine: BridgeMachine, *inputs: BridgeInput) -> BridgeMachine:
    for event in inputs:
        machine.handle(event)
    return machine


# One way into each state, and how many devices or forks are still ringing there.
def machine_in(state: BridgeState, pending: int = 2, click: bool = False) -> BridgeMachine:
    offered = BridgeMachine.offered(CALL)
    picked = Answered(at_us=at(), peer=device(0), late_offer=True)
    builders: dict[BridgeState, Callable[[], BridgeMachine]] = {
        S.OFFERED: lambda: offered,
        S.RINGING_USER: lambda: click_to_dial(pending),
        S.USER_ANSWERED: lambda: fed(click_to_dial(), picked),
        S.DIALING: lambda: (fed(click_to_dial(), picked, dial(pending)) if click
                            else fed(offered, dial(pending))),
        S.ALERTING: lambda: fed(machine_in(S.DIALING, pending, click),
                                Ringing(at_us=at(), peer=fork(0))),
        S.CONNECTING: lambda: fed(click_to_dial(), picked, dial(2),
                                  Answered(at_us=at(), peer=fork(0))),
        S.CONNECTED: lambda: (fed(machine_in(S.CONNECTING), Answered(at_us=at(), peer=CALLER))
                              if click else fed(offered, dial(2),
                                                Answered(at_us=at(), peer=fork(0)))),
        # Held by the command for the caller, both re-INVITEs answered.
        S.HELD: lambda: fed(machine_in(S.CONNECTED), HoldSide(at_us=at(), side=Side.CALLER),
                            Answered(at_us=at(), peer=fork(0)),
                            Answered(at_us=at(), peer=CALLER)),
        # The callee's phone transferred the call (REFER to 220).
        S.REFERRED: lambda: fed(machine_in(S.CONNECTED), REFER_FROM_CALLEE()),
        S.ENDED: lambda: fed(offered, EndCall(at_us=at(), reason=HangupReason.API)),
    }
    machine = builders[state]()
    assert machine.state is state
    return machine


def reports(actions: list[Action]) -> list[object]:
    return [action.signal for action in actions if isinstance(action, Report)]


def ended_with(reason: HangupReason) -> Callable[[list[Action]], bool]:
    def check(actions: list[Action]) -> bool:
        ends = [signal for signal in reports(actions) if isinstance(signal, CallEnded)]
        return [end.reason for end in ends] == [reason] and isinstance(actions[-1], Finished)

    return check


def has(*expected: Action) -> Callable[[list[Action]], bool]:
    return lambda actions: all(action in actions for action in expected)


def nothing(actions: list[Action]) -> bool:
    return actions == []


# (state, kind) -> (machine, input, state after, what the actions must show)
Case = tuple[Callable[[], BridgeMachine], Callable[[], BridgeInput], BridgeState,
             Callable[[list[Action]], bool]]

END = lambda: EndCall(at_us=at(), reason=HangupReason.API)  # noqa: E731
STRAY = lambda: Ringing(at_us=at(), peer=fork(9))  # noqa: E731
REFUSE = lambda: Refuse(at_us=at(), status=404, phrase="Not Found",  # noqa: E731
                        reason=HangupReason.UNAVAILABLE)
CALLER_BYE = lambda: HungUp(at_us=at(), peer=CALLER)  # noqa: E731
CALLEE_BYE = lambda: HungUp(at_us=at(), peer=fork(0))  # noqa: E731


def _in(state: BridgeState, pending: int = 2, click: bool = False) -> Callable[[],
                                                                               BridgeMachine]:
    return lambda: machine_in(state, pending, click)


CASES: dict[tuple[BridgeState, InputKind], Case] = {
    # OFFERED: a phone's INVITE, the domain decides
    (S.OFFERED, K.DIAL): (_in(S.OFFERED), dial, S.DIALING, lambda a: [
        type(x) for x in a] == [CallFork, CallFork, StartTimer]),
    (S.OFFERED, K.REFUSE): (_in(S.OFFERED), REFUSE, S.ENDED,
                            lambda a: RefuseCaller(404, "Not Found") in a
                            and ended_with(HangupReason.UNAVAILABLE)(a)),
    (S.OFFERED, K.CALLER_ENDED): (_in(S.OFFERED), CALLER_BYE, S.ENDED,
                                  ended_with(HangupReason.CANCELLED)),
    (S.OFFERED, K.END): (_in(S.OFFERED), END, S.ENDED,
                         lambda a: RefuseCaller(487, "Request Terminated") in a
                         and ended_with(HangupReason.API)(a)),
    (S.OFFERED, K.STRAY): (_in(S.OFFERED), STRAY, S.OFFERED, nothing),
    # RINGING_USER: click-to-dial, the user's devices ring
    (S.RINGING_USER, K.DEVICE_RINGING): (_in(S.RINGING_USER),
                                         lambda: Ringing(at_us=at(), peer=device(1)),
                                         S.RINGING_USER, nothing),
    (S.RINGING_USER, K.DEVICE_ANSWERED): (
        _in(S.RINGING_USER), lambda: Answered(at_us=at(), peer=device(1), late_offer=True),
        S.USER_ANSWERED,
        lambda a: a[:4] == [Disconnect(device(0)), StopTimer(Timer.USER),
                            BecomeCaller(device(1)), AcceptLateOffer(CALLER)]
        and isinstance(reports(a)[0], UserPickedUp) and a[-1] == SaveDialogs()),
    (S.RINGING_USER, K.DEVICE_FAILED): (_in(S.RINGING_USER),
                                        lambda: Failed(at_us=at(), peer=device(0), status=486),
                                        S.RINGING_USER, nothing),
    (S.RINGING_USER, K.LAST_DEVICE_FAILED): (
        _in(S.RINGING_USER, pending=1), lambda: Failed(at_us=at(), peer=device(0), status=486),
        S.ENDED, ended_with(HangupReason.BUSY)),
    (S.RINGING_USER, K.USER_TIMEOUT): (
        _in(S.RINGING_USER), lambda: TimedOut(at_us=at(), timer=Timer.USER), S.ENDED,
        lambda a: has(Disconnect(device(0)), Disconnect(device(1)))(a)
        and ended_with(HangupReason.NO_ANSWER)(a)),
    (S.RINGING_USER, K.REFUSE): (_in(S.RINGING_USER), REFUSE, S.ENDED,
                                 lambda a: not any(isinstance(x, RefuseCaller) for x in a)
                                 and ended_with(HangupReason.UNAVAILABLE)(a)),
    (S.RINGING_USER, K.END): (_in(S.RINGING_USER), END, S.ENDED,
                              lambda a: has(Disconnect(device(0)), Disconnect(device(1)))(a)
                              and ended_with(HangupReason.API)(a)),
    (S.RINGING_USER, K.STRAY): (_in(S.RINGING_USER), STRAY, S.RINGING_USER, nothing),
    # USER_ANSWERED: the user picked up; the destination is next
    (S.USER_ANSWERED, K.DIAL): (_in(S.USER_ANSWERED), dial, S.DIALING,
                                lambda a: isinstance(a[0], CallFork)),
    (S.USER_ANSWERED, K.REFUSE): (_in(S.USER_ANSWERED), REFUSE, S.ENDED,
                                  lambda a: Disconnect(CALLER) in a
                                  and ended_with(HangupReason.UNAVAILABLE)(a)),
    (S.USER_ANSWERED, K.CALLER_REOFFERED): (
        _in(S.USER_ANSWERED), lambda: Reoffered(at_us=at(), peer=CALLER, holds=True),
        S.USER_ANSWERED, nothing),
    (S.USER_ANSWERED, K.CALLER_ANSWERED): (_in(S.USER_ANSWERED),
                                           lambda: Answered(at_us=at(), peer=CALLER),
                                           S.USER_ANSWERED, nothing),
    (S.USER_ANSWERED, K.CALLER_ENDED): (_in(S.USER_ANSWERED), CALLER_BYE, S.ENDED,
                                        ended_with(HangupReason.CANCELLED)),
    (S.USER_ANSWERED, K.END): (_in(S.USER_ANSWERED), END, S.ENDED,
                               lambda a: Disconnect(CALLER) in a
                               and ended_with(HangupReason.API)(a)),
    (S.USER_ANSWERED, K.STRAY): (_in(S.USER_ANSWERED), STRAY, S.USER_ANSWERED, nothing),
}


def _waiting_cases(state: BridgeState) -> dict[tuple[BridgeState, InputKind], Case]:
    """DIALING and ALERTING take the same inputs; only the first 180 differs."""
    ring_again = state is S.ALERTING
    return {
        (state, K.FORK_RINGING): (
            _in(state), lambda: Ringing(at_us=at(), peer=fork(1)), S.ALERTING,
            nothing if ring_again else lambda a: a[0] == Relay(CALLER)
            and isinstance(reports(a)[0], CalleeRinging)),
        (state, K.FORK_ANSWERED): (
            _in(state), lambda: Answered(at_us=at(), peer=fork(1)), S.CONNECTED,
            lambda a: a[:3] == [Disconnect(fork(0)), StopTimer(Timer.RING), Relay(CALLER)]
            and isinstance(reports(a)[0], CallAnswered) and a[-1] == SaveDialogs()),
        (state, K.FORK_ANSWERED_CALLER_UP): (
            _in(state, click=True), lambda: Answered(at_us=at(), peer=fork(1)),
            S.CONNECTING,
            lambda a: a[:3] == [Disconnect(fork(0)), StopTimer(Timer.RING), ReofferCaller()]
            and isinstance(reports(a)[0], CallAnswered)),
        (state, K.FORK_FAILED): (_in(state),
                                 lambda: Failed(at_us=at(), peer=fork(1), status=486),
                                 state, nothing),
        (state, K.LAST_FORK_FAILED): (
            _in(state, pending=1), lambda: Failed(at_us=at(), peer=fork(0), status=486),
            S.ENDED, lambda a: RefuseCaller(486, "Busy Here") in a
            and ended_with(HangupReason.BUSY)(a)),
        (state, K.RING_TIMEOUT): (
            _in(state), lambda: TimedOut(at_us=at(), timer=Timer.RING), S.ENDED,
            lambda a: RefuseCaller(480, "No Answer") in a
            and has(Disconnect(fork(0)), Disconnect(fork(1)))(a)
            and ended_with(HangupReason.NO_ANSWER)(a)),
        (state, K.CALLER_REOFFERED): (
            _in(state, click=True), lambda: Reoffered(at_us=at(), peer=CALLER, holds=True),
            state, nothing),
        (state, K.CALLER_ANSWERED): (_in(state, click=True),
                                     lambda: Answered(at_us=at(), peer=CALLER), state,
                                     nothing),
        (state, K.CALLER_ENDED): (_in(state), CALLER_BYE, S.ENDED,
                                  lambda a: has(Disconnect(fork(0)), Disconnect(fork(1)))(a)
                                  and ended_with(HangupReason.CANCELLED)(a)),
        (state, K.END): (_in(state), END, S.ENDED,
                         lambda a: RefuseCaller(487, "Request Terminated") in a
                         and ended_with(HangupReason.API)(a)),
        (state, K.STRAY): (_in(state), STRAY, state, nothing),
    }


def _up_cases(state: BridgeState) -> dict[tuple[BridgeState, InputKind], Case]:
    """CONNECTING and CONNECTED: both sides are up; re-INVITEs and answers cross."""
    click = state is S.CONNECTING
    cases: dict[tuple[BridgeState, InputKind], Case] = {
        (state, K.CALLER_REOFFERED): (
            _in(state), lambda: Reoffered(at_us=at(), peer=CALLER, holds=True), state,
            lambda a: a[0] == Relay(fork(0)) and isinstance(reports(a)[0], HoldChanged)
            and a[-1] == SaveDialogs()),
        (state, K.CALLEE_REOFFERED): (
            _in(state), lambda: Reoffered(at_us=at(), peer=fork(0), holds=False), state,
            lambda a: a == [Relay(CALLER), SaveDialogs()]),
        (state, K.CALLEE_ANSWERED): (_in(state), lambda: Answered(at_us=at(), peer=fork(0)),
                                     state, lambda a: a == [Relay(CALLER)]),
        **_answered_ending_cases(state),
        (state, K.STRAY): (_in(state), STRAY, state, nothing),
    }
    if click:  # the user's phone answers our re-INVITE: swallowed
        cases[(state, K.CALLER_ANSWERED)] = (_in(state),
                                             lambda: Answered(at_us=at(), peer=CALLER),
                                             S.CONNECTED, nothing)
    else:  # the caller answers a re-INVITE the callee sent: relayed
        cases[(state, K.CALLER_ANSWERED)] = (_in(state),
                                             lambda: Answered(at_us=at(), peer=CALLER),
                                             state, lambda a: a == [Relay(fork(0))])
        cases[(state, K.RING_TIMEOUT)] = (_in(state),
                                          lambda: TimedOut(at_us=at(), timer=Timer.RING),
                                          state, nothing)
    return cases


def _answered_ending_cases(state: BridgeState) -> dict[tuple[BridgeState, InputKind], Case]:
    """How an answered call (CONNECTED or HELD) ends: a BYE from either side, or the
    hangup command."""
    return {
        (state, K.CALLER_ENDED): (_in(state), CALLER_BYE, S.ENDED,
                                  lambda a: a[0] == Disconnect(fork(0))
                                  and ended_with(HangupReason.COMPLETED)(a)),
        (state, K.CALLEE_ENDED): (_in(state), CALLEE_BYE, S.ENDED,
                                  lambda a: a[0] == Disconnect(CALLER)
                                  and ended_with(HangupReason.COMPLETED)(a)),
        (state, K.END): (_in(state), END, S.ENDED,
                         lambda a: has(Disconnect(fork(0)), Disconnect(CALLER))(a)
                         and ended_with(HangupReason.API)(a)),
    }


def _held_cases() -> dict[tuple[BridgeState, InputKind], Case]:
    """HELD (by the command) takes what CONNECTED takes; re-INVITEs from the phones are
    relayed, but the call stays held until the resume command."""
    state = S.HELD
    return {
        (state, K.CALLER_REOFFERED): (
            _in(state), lambda: Reoffered(at_us=at(), peer=CALLER, holds=False), state,
            lambda a: a == [Relay(fork(0)), SaveDialogs()]),
        (state, K.CALLEE_REOFFERED): (
            _in(state), lambda: Reoffered(at_us=at(), peer=fork(0), holds=True), state,
            lambda a: a == [Relay(CALLER), SaveDialogs()]),
        (state, K.CALLER_ANSWERED): (_in(state), lambda: Answered(at_us=at(), peer=CALLER),
                                     state, lambda a: a == [Relay(fork(0))]),
        (state, K.CALLEE_ANSWERED): (_in(state), lambda: Answered(at_us=at(), peer=fork(0)),
                                     state, lambda a: a == [Relay(CALLER)]),
        **_answered_ending_cases(state),
        (state, K.RING_TIMEOUT): (_in(state), lambda: TimedOut(at_us=at(), timer=Timer.RING),
                                  state, nothing),
        (state, K.STRAY): (_in(state), STRAY, state, nothing),
    }


def held_change(held: bool) -> Report:
    return Report(HoldChanged(call_id=CALL, held=held, at_us=0))


def same_reports(actions: list[Action], expected: list[Report]) -> bool:
    """The reports, times aside."""
    return [type(r.signal)(**{**_fields(r.signal), "at_us": 0}) for r in actions
            if isinstance(r, Report)] == [r.signal for r in expected]


def _fields(signal: object) -> dict[str, object]:
    return {name: getattr(signal, name) for name in signal.__slots__}  # type: ignore[attr-defined]


HOLD = lambda: HoldSide(at_us=at(), side=Side.CALLER)  # noqa: E731
RESUME = lambda: ResumeSide(at_us=at(), side=Side.CALLER)  # noqa: E731


REFER_FROM_CALLEE = lambda: Referred(at_us=at(), peer=fork(0), destination="220")  # noqa: E731


def asked(side: Side) -> Callable[[list[Action]], bool]:
    """The actions of a REFER: forget that phone, ask the domain where the call goes."""
    return lambda a: (len(a) == 2 and isinstance(a[0], Disconnect)
                      and isinstance(a[1], Report) and isinstance(a[1].signal, TransferAsked)
                      and (a[1].signal.side, a[1].signal.destination) == (side, "220"))


def transfer(keep: Side, count: int = 1) -> Callable[[], TransferTo]:
    return lambda: TransferTo(at_us=at(), keep=keep, dial=dial(count))


def _command_cases() -> dict[tuple[BridgeState, InputKind], Case]:
    """The call-control commands: hold, resume, transfer (blind and attended), and the
    answers to the re-INVITEs they make up."""
    cases: dict[tuple[BridgeState, InputKind], Case] = {
        (S.CONNECTED, K.HOLD): (
            _in(S.CONNECTED), HOLD, S.HELD,
            lambda a: a[:2] == [Reoffer(fork(0), CALLER, Direction.SENDONLY),
                                Reoffer(CALLER, fork(0), Direction.INACTIVE)]
            and same_reports(a, [held_change(True)]) and a[-1] == SaveDialogs()),
        (S.HELD, K.HOLD): (_in(S.HELD), HOLD, S.HELD, nothing),
        # The caller still owes the answer to our re-INVITE: only the callee's goes now.
        (S.CONNECTING, K.HOLD): (
            _in(S.CONNECTING), HOLD, S.HELD,
            lambda a: a[0] == Reoffer(fork(0), CALLER, Direction.SENDONLY)
            and not any(isinstance(x, Reoffer) and x.to == CALLER for x in a)
            and same_reports(a, [held_change(True)])),
        (S.HELD, K.RESUME): (
            _in(S.HELD), RESUME, S.CONNECTED,
            lambda a: a[:2] == [Reoffer(fork(0), CALLER, Direction.SENDRECV),
                                Reoffer(CALLER, fork(0), Direction.SENDRECV)]
            and same_reports(a, [held_change(False)])),
        (S.CONNECTED, K.RESUME): (_in(S.CONNECTED), RESUME, S.CONNECTED, nothing),
        (S.CONNECTING, K.RESUME): (_in(S.CONNECTING), RESUME, S.CONNECTING, nothing),
        # Our re-INVITEs' answers are not relayed.
        (S.CONNECTED, K.OWN_ANSWERED): (
            lambda: fed(machine_in(S.HELD), RESUME()),
            lambda: Answered(at_us=at(), peer=fork(0), refused=True), S.CONNECTED, nothing),
        (S.HELD, K.OWN_ANSWERED): (
            lambda: fed(machine_in(S.CONNECTED), HOLD()),
            lambda: Answered(at_us=at(), peer=CALLER), S.HELD, nothing),
    }
    for state in (S.CONNECTING, S.CONNECTED, S.HELD):
        # The callee (fork 0) transfers; the caller stays and is the caller still.
        cases[(state, K.TRANSFER)] = (
            _in(state), transfer(Side.CALLER), S.DIALING,
            lambda a: a[:2] == [Disconnect(fork(0)), BecomeCaller(CALLER, resume=True)]
            and [x.peer for x in a if isinstance(x, CallFork)] == [fork(2)]
            and StartTimer(Timer.RING, 60) in a and a[-1] == SaveDialogs()
            and not reports(a))
        cases[(state, K.TRANSFER_NOWHERE)] = (
            _in(state), transfer(Side.CALLEE, count=0), S.ENDED,
            lambda a: a[:2] == [Disconnect(CALLER), Disconnect(fork(0))]
            and ended_with(HangupReason.UNAVAILABLE)(a))
        cases[(state, K.HAND_OVER)] = (
            _in(state), lambda: HandOver(at_us=at(), user_side=Side.CALLER), S.ENDED,
            lambda a: a == [Disconnect(CALLER), Release(fork(0)), Finished(True)])
        cases[(state, K.TAKE_OVER)] = (
            _in(state), lambda: TakeOver(at_us=at(), user_side=Side.CALLEE), S.CONNECTED,
            lambda a: a == [Disconnect(fork(0)), Adopt(fork(2)),
                            Reoffer(CALLER, fork(2), Direction.SENDRECV),
                            Reoffer(fork(2), CALLER, Direction.SENDRECV), SaveDialogs()])
    for state in (S.CONNECTING, S.CONNECTED, S.HELD):
        cases[(state, K.REFERRED)] = (_in(state), REFER_FROM_CALLEE, S.REFERRED,
                                      asked(Side.CALLEE))
    cases.update(_referred_cases())
    return cases


def _referred_cases() -> dict[tuple[BridgeState, InputKind], Case]:
    """REFERRED: the callee's phone left with a REFER; the caller waits for the domain."""
    state = S.REFERRED
    cases: dict[tuple[BridgeState, InputKind], Case] = {
        (state, K.TRANSFER): (
            _in(state), transfer(Side.CALLER), S.DIALING,
            lambda a: a[:2] == [Disconnect(fork(0)), BecomeCaller(CALLER, resume=True)]
            and [x.peer for x in a if isinstance(x, CallFork)] == [fork(2)]),
        (state, K.TRANSFER_NOWHERE): (_in(state), transfer(Side.CALLER, count=0), S.ENDED,
                                      ended_with(HangupReason.UNAVAILABLE)),
        (state, K.END): (_in(state), END, S.ENDED, ended_with(HangupReason.API)),
        (state, K.STRAY): (_in(state), STRAY, state, nothing),
        (state, K.CALLER_ENDED): (_in(state), CALLER_BYE, S.ENDED,
                                  ended_with(HangupReason.COMPLETED)),
        (state, K.CALLEE_ENDED): (_in(state), CALLEE_BYE, S.ENDED,
                                  ended_with(HangupReason.COMPLETED)),
        (state, K.RING_TIMEOUT): (_in(state), lambda: TimedOut(at_us=at(), timer=Timer.RING),
                                  state, nothing),
        (state, K.HOLD): (_in(state), HOLD, state, nothing),
        (state, K.RESUME): (_in(state), RESUME, state, nothing),
    }
    # Whatever the caller sends meanwhile has nobody to go to.
    for kind, event in (
            (K.CALLER_REOFFERED, lambda: Reoffered(at_us=at(), peer=CALLER, holds=True)),
            (K.CALLEE_REOFFERED, lambda: Reoffered(at_us=at(), peer=fork(0), holds=True)),
            (K.CALLER_ANSWERED, lambda: Answered(at_us=at(), peer=CALLER)),
            (K.CALLEE_ANSWERED, lambda: Answered(at_us=at(), peer=fork(0)))):
        cases[(state, kind)] = (_in(state), event, state, nothing)
    return cases


CASES.update(_held_cases())
CASES.update(_command_cases())
for _state in (S.DIALING, S.ALERTING):
    CASES.update(_waiting_cases(_state))
for _state in (S.CONNECTING, S.CONNECTED):
    CASES.update(_up_cases(_state))


def test_every_row_of_the_table_has_a_case() -> None:
    rows = {(state, kind) for state, row in TRANSITIONS.items() for kind in row
            if state is not S.ENDED}
    assert rows == set(CASES)


@pytest.mark.parametrize("row", list(CASES), ids=lambda row: f"{row[0]}-{row[1]}")
def test_row(row: tuple[BridgeState, InputKind]) -> None:
    make_machine, make_input, after, check = CASES[row]
    machine = make_machine()
    event = make_input()
    assert machine.kind_of(event) is row[1]
    actions = machine.handle(event)
    assert machine.state is after
    assert TRANSITIONS[row[0]][row[1]] is after
    assert check(actions), actions


@pytest.mark.parametrize("kind", list(K))
def test_ended_ignores_everything(kind: InputKind) -> None:
    assert TRANSITIONS[S.ENDED][kind] is S.ENDED
    machine = machine_in(S.ENDED)
    for event in (dial(), REFUSE(), END(), CALLER_BYE(), CALLEE_BYE(), STRAY(),
                  TimedOut(at_us=at(), timer=Timer.RING)):
        assert machine.handle(event) == []
    assert machine.state is S.ENDED


ILLEGAL = [(state, kind) for state in S if state is not S.ENDED for kind in K
           if kind not in TRANSITIONS[state]]


def test_illegal_pairs_raise_and_change_nothing() -> None:
    # An input of each illegal kind, built in a state where it is classified as that kind.
    samples: dict[InputKind, Callable[[], BridgeInput]] = {
        K.DIAL: dial, K.REFUSE: REFUSE,
        K.CALLER_ANSWERED: lambda: Answered(at_us=at(), peer=CALLER),
        K.CALLER_REOFFERED: lambda: Reoffered(at_us=at(), peer=CALLER, holds=False),
        K.CALLER_ENDED: CALLER_BYE,
        K.RING_TIMEOUT: lambda: TimedOut(at_us=at(), timer=Timer.RING),
        K.USER_TIMEOUT: lambda: TimedOut(at_us=at(), timer=Timer.USER),
        K.HOLD: HOLD, K.RESUME: RESUME,
        K.TRANSFER: transfer(Side.CALLER),
        K.TRANSFER_NOWHERE: transfer(Side.CALLER, count=0),
        K.HAND_OVER: lambda: HandOver(at_us=at(), user_side=Side.CALLER),
        K.TAKE_OVER: lambda: TakeOver(at_us=at(), user_side=Side.CALLER),
    }
    checked = 0
    for state, kind in ILLEGAL:
        if kind not in samples:
            continue  # peer kinds (device, fork, callee) are STRAY in states without them
        machine = machine_in(state)
        event = samples[kind]()
        if machine.kind_of(event) is not kind:
            continue
        before = (machine.state, set(machine.forks), set(machine.devices), machine.callee)
        with pytest.raises(IllegalTransition):
            machine.handle(event)
        assert (machine.state, set(machine.forks), set(machine.devices),
                machine.callee) == before
        checked += 1
    assert checked >= 40


# --- scenarios, as a call goes ---------------------------------------------------------------


def test_a_losing_fork_is_cancelled_and_its_late_events_are_ignored() -> None:
    machine = fed(BridgeMachine.offered(CALL), dial(3))
    assert machine.handle(Ringing(at_us=at(), peer=fork(2)))[0] == Relay(CALLER)
    actions = machine.handle(Answered(at_us=at(), peer=fork(1)))
    assert [a for a in actions if isinstance(a, Disconnect)] == [Disconnect(fork(0)),
                                                               Disconnect(fork(2))]
    assert machine.handle(Failed(at_us=at(), peer=fork(0), status=487)) == []
    assert machine.handle(Answered(at_us=at(), peer=fork(2))) == []
    assert machine.state is S.CONNECTED and machine.callee == fork(1)


def test_the_best_failure_is_what_the_caller_hears() -> None:
    machine = fed(BridgeMachine.offered(CALL), dial(3))
    machine.handle(Failed(at_us=at(), peer=fork(0), status=480))
    machine.handle(Failed(at_us=at(), peer=fork(1), status=486))
    actions = machine.handle(Failed(at_us=at(), peer=fork(2), status=404))
    assert RefuseCaller(486, "Busy Here") in actions
    assert ended_with(HangupReason.BUSY)(actions)


def test_hold_is_reported_until_both_sides_resume() -> None:
    machine = machine_in(S.CONNECTED)
    holds = []
    for peer, holding in ((CALLER, True), (fork(0), True), (CALLER, False), (fork(0), False)):
        holds += [s.held for s in reports(machine.handle(
            Reoffered(at_us=at(), peer=peer, holds=holding))) if isinstance(s, HoldChanged)]
    assert holds == [True, False]


def test_click_to_dial_from_pick_up_to_connected() -> None:
    machine, first = BridgeMachine.click_to_dial(CALL, RingDevices(
        at_us=at(), devices=targets(2), display_name="(pick up to call)", shown_number="200",
        auto_answer=True, timeout=30))
    assert [type(a) for a in first] == [CallDevice, CallDevice, StartTimer]
    assert all(a.auto_answer for a in first if isinstance(a, CallDevice))
    machine.handle(Answered(at_us=at(), peer=device(0), late_offer=True))
    # The phone that picked up plays the caller from now on; the other device stops.
    assert machine.handle(Failed(at_us=at(), peer=device(1), status=487)) == []
    machine.handle(dial(1))
    ringing = machine.handle(Ringing(at_us=at(), peer=fork(0)))
    assert Relay(CALLER) not in ringing  # the user's phone is answered already
    assert ReofferCaller() in machine.handle(Answered(at_us=at(), peer=fork(0)))
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == []
    assert machine.state is S.CONNECTED
    actions = machine.handle(HungUp(at_us=at(), peer=fork(0)))
    assert actions[0] == Disconnect(CALLER)
    assert actions[-1] == Finished(dialogs_saved=True)


def test_a_fork_hanging_up_before_it_answers_counts_as_failed() -> None:
    machine = fed(BridgeMachine.offered(CALL), dial(1))
    actions = machine.handle(HungUp(at_us=at(), peer=fork(0)))
    assert RefuseCaller(500, "Call Failed") in actions
    assert ended_with(HangupReason.FAILED)(actions)


def test_a_call_never_answered_has_no_dialogs_to_close() -> None:
    machine = fed(BridgeMachine.offered(CALL), dial(1))
    assert machine.handle(END())[-1] == Finished(dialogs_saved=False)


def test_blind_transfer_from_the_caller_to_connected() -> None:
    machine = machine_in(S.CONNECTED)  # caller (a phone) and fork 0 (the callee) talk
    # The caller's user transfers: fork 0 stays and becomes the caller.
    actions = machine.handle(transfer(Side.CALLEE)())
    assert actions[:2] == [Disconnect(CALLER), BecomeCaller(fork(0), resume=True)]
    assert machine.callee is None and machine.caller_up
    machine.handle(Ringing(at_us=at(), peer=fork(2)))
    answered = machine.handle(Answered(at_us=at(), peer=fork(2)))
    assert ReofferCaller() in answered and Relay(CALLER) not in answered
    assert machine.state is S.CONNECTING and machine.callee == fork(2)
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == []
    assert machine.state is S.CONNECTED


@pytest.mark.parametrize(("status", "reason"), [(486, HangupReason.BUSY),
                                                (480, HangupReason.UNAVAILABLE),
                                                (603, HangupReason.REJECTED)])
def test_a_blind_transfer_nobody_answers_hangs_up_the_party_kept(
        status: int, reason: HangupReason) -> None:
    machine = fed(machine_in(S.HELD), transfer(Side.CALLER)())
    actions = machine.handle(Failed(at_us=at(), peer=fork(2), status=status))
    assert Disconnect(CALLER) in actions and not any(isinstance(a, RefuseCaller)
                                                     for a in actions)
    assert ended_with(reason)(actions)


def test_a_blind_transfer_that_rings_too_long_ends_no_answer() -> None:
    machine = fed(machine_in(S.CONNECTED), transfer(Side.CALLER)())
    actions = machine.handle(TimedOut(at_us=at(), timer=Timer.RING))
    assert has(Disconnect(fork(2)), Disconnect(CALLER))(actions)
    assert ended_with(HangupReason.NO_ANSWER)(actions)


def test_attended_transfer_joins_the_other_parties_of_two_calls() -> None:
    staying = machine_in(S.HELD)  # the user is the caller; fork 0 waits on hold
    going = machine_in(S.CONNECTED)  # the user is the caller here too; fork 0 is the target
    given = going.handle(HandOver(at_us=at(), user_side=Side.CALLER))
    assert given == [Disconnect(CALLER), Release(fork(0)), Finished(True)]
    assert not reports(given), "the domain ends the user's legs itself"
    joined = staying.handle(TakeOver(at_us=at(), user_side=Side.CALLER))
    assert joined == [Disconnect(CALLER), Adopt(CALLER),
                      Reoffer(fork(0), CALLER, Direction.SENDRECV),
                      Reoffer(CALLER, fork(0), Direction.SENDRECV), SaveDialogs()]
    assert staying.state is S.CONNECTED
    # Both answers are ours; a later re-INVITE from either side is relayed again.
    assert staying.handle(Answered(at_us=at(), peer=CALLER)) == []
    assert staying.handle(Answered(at_us=at(), peer=fork(0))) == []
    assert staying.handle(Answered(at_us=at(), peer=fork(0))) == [Relay(CALLER)]


def test_resume_lifts_a_hold_made_by_a_phone() -> None:
    machine = fed(machine_in(S.CONNECTED),
                  Reoffered(at_us=at(), peer=fork(0), holds=True))
    actions = machine.handle(ResumeSide(at_us=at(), side=Side.CALLEE))
    assert actions[:2] == [Reoffer(CALLER, fork(0), Direction.SENDRECV),
                           Reoffer(fork(0), CALLER, Direction.SENDRECV)]
    assert same_reports(actions, [held_change(False)])
    assert not machine.callee_holds


def test_a_refused_reinvite_from_a_phone_is_relayed_and_the_call_stays() -> None:
    machine = machine_in(S.CONNECTED)
    machine.handle(Reoffered(at_us=at(), peer=CALLER, holds=True))
    assert machine.handle(Answered(at_us=at(), peer=fork(0), refused=True)) == [Relay(CALLER)]
    assert machine.state is S.CONNECTED


def test_a_resume_before_the_phones_answered_the_hold_waits_for_their_answers() -> None:
    machine = machine_in(S.CONNECTED)
    held = machine.handle(HoldSide(at_us=at(), side=Side.CALLER))
    assert held[:2] == [Reoffer(fork(0), CALLER, Direction.SENDONLY),
                        Reoffer(CALLER, fork(0), Direction.INACTIVE)]
    # A dialog has one INVITE transaction at a time: nothing goes out before the answers,
    # but the state (and the report) follows the command at once.
    resumed = machine.handle(ResumeSide(at_us=at(), side=Side.CALLER))
    assert not any(isinstance(a, Reoffer) for a in resumed)
    assert same_reports(resumed, [held_change(False)]) and machine.state is S.CONNECTED
    # (Sent once sippy has ACKed the answer: it tells us before it ACKs.)
    assert machine.handle(Answered(at_us=at(), peer=fork(0))) == [
        Reoffer(fork(0), CALLER, Direction.SENDRECV, after_ack=True), SaveDialogs()]
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == [
        Reoffer(CALLER, fork(0), Direction.SENDRECV, after_ack=True), SaveDialogs()]
    # Those answers are ours too; after them a phone's re-INVITE is relayed again.
    assert machine.handle(Answered(at_us=at(), peer=fork(0))) == []
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == []
    assert machine.handle(Answered(at_us=at(), peer=fork(0))) == [Relay(CALLER)]


def test_a_hold_while_the_caller_still_owes_its_answer_follows_that_answer() -> None:
    machine = machine_in(S.CONNECTING)  # click-to-dial: the user's phone is re-INVITEd
    machine.handle(HoldSide(at_us=at(), side=Side.CALLER))
    assert machine.state is S.HELD
    # Its answer to the callee's SDP is ours; then it gets the hold (after the ACK).
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == [
        Reoffer(CALLER, fork(0), Direction.INACTIVE, after_ack=True), SaveDialogs()]
    assert machine.handle(Answered(at_us=at(), peer=CALLER)) == []
    assert machine.handle(Answered(at_us=at(), peer=fork(0))) == []


def test_a_refer_before_the_call_is_answered_is_a_hang_up() -> None:
    machine = machine_in(S.ALERTING)  # a REFER from the caller whose callee still rings
    actions = machine.handle(Referred(at_us=at(), peer=CALLER, destination="220"))
    assert machine.state is S.ENDED and ended_with(HangupReason.CANCELLED)(actions)


def test_a_refer_from_the_caller_asks_for_the_callee_to_be_transferred() -> None:
    machine = machine_in(S.HELD)
    assert asked(Side.CALLER)(machine.handle(
        Referred(at_us=at(), peer=CALLER, destination="220")))
    actions = machine.handle(transfer(Side.CALLEE)())
    assert actions[:2] == [Disconnect(CALLER), BecomeCaller(fork(0), resume=True)]
