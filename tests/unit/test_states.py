"""Every state machine: each allowed move passes, every other move raises IllegalTransition.

All pairs of states are tried (the tables are small), so a move added to or dropped from
a table without a matching change here fails a test.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from enum import StrEnum
from itertools import product
from typing import Any

import pytest

from certautopilot.approvals import states as approval_states
from certautopilot.certificates import states as cert_states
from certautopilot.distribution import states as deploy_states
from certautopilot.errors import Conflict, IllegalTransition
from certautopilot.issuers.adcs import states as adcs_states
from certautopilot.notifications import states as notification_states
from certautopilot.statemachine import Machine

C = cert_states.CertStatus
V = cert_states.VersionStatus
D = deploy_states.DeployStatus
R = approval_states.RequestStatus
A = adcs_states.AdcsStatus
N = notification_states.DeliveryStatus

# What the code does, written out once more by hand: (machine, transition function, moves).
EXPECTED: list[tuple[Machine[Any], Callable[[str, Any], Any], set[tuple[str, str]]]] = [
    (
        cert_states.CERTIFICATE,
        cert_states.transition,
        {
            (C.REQUESTED, C.AWAITING_APPROVAL),  # policy wants an approver
            (C.REQUESTED, C.ISSUING),  # the ACME order / AD CS submission is made
            (C.REQUESTED, C.FAILED),  # failed before the order
            (C.REQUESTED, C.REVOKED),  # a renewal is queued, the current version revoked
            (C.AWAITING_APPROVAL, C.REQUESTED),  # approved
            (C.AWAITING_APPROVAL, C.REJECTED),  # rejected or expired
            (C.ISSUING, C.AWAITING_DNS),
            (C.ISSUING, C.AWAITING_CA),
            (C.ISSUING, C.ISSUED),
            (C.ISSUING, C.FAILED),
            (C.ISSUING, C.REVOKED),
            (C.AWAITING_DNS, C.ISSUING),  # the records are visible
            (C.AWAITING_DNS, C.FAILED),
            (C.AWAITING_DNS, C.REVOKED),
            (C.AWAITING_CA, C.ISSUED),
            (C.AWAITING_CA, C.FAILED),
            (C.AWAITING_CA, C.REVOKED),
            (C.ISSUED, C.REQUESTED),  # renewal
            (C.ISSUED, C.FAILED),  # renewal attempts spent
            (C.ISSUED, C.REVOKED),
            (C.FAILED, C.REQUESTED),  # renewal / a new try
            (C.FAILED, C.ISSUED),  # a failed renewal, the current certificate still valid
            (C.FAILED, C.REVOKED),
            # a renewal running when the current version was revoked goes on to its end
            (C.REVOKED, C.ISSUING),
            (C.REVOKED, C.AWAITING_DNS),
            (C.REVOKED, C.AWAITING_CA),
            (C.REVOKED, C.ISSUED),
            (C.REVOKED, C.FAILED),
        },
    ),
    (
        cert_states.VERSION,
        cert_states.transition_version,
        {(V.PENDING, V.ISSUED), (V.PENDING, V.FAILED), (V.PENDING, V.REJECTED)}
        | {(V.ISSUED, V.REVOKED)},
    ),
    (
        deploy_states.DEPLOYMENT,
        deploy_states.transition,
        {
            (D.PENDING, D.RUNNING),
            (D.PENDING, D.SUPERSEDED),
            (D.RUNNING, D.SUCCEEDED),
            (D.RUNNING, D.RETRYING),
            (D.RUNNING, D.FAILED),
            (D.RUNNING, D.SUPERSEDED),
            (D.RETRYING, D.RUNNING),
            (D.RETRYING, D.SUPERSEDED),
        },
    ),
    (
        approval_states.APPROVAL_REQUEST,
        approval_states.transition,
        {(R.PENDING, R.APPROVED), (R.PENDING, R.REJECTED), (R.PENDING, R.EXPIRED)},
    ),
    (
        adcs_states.ADCS_REQUEST,
        adcs_states.transition,
        {
            (A.SUBMITTED, A.PENDING),
            (A.SUBMITTED, A.ISSUED),
            (A.SUBMITTED, A.DENIED),
            (A.PENDING, A.ISSUED),
            (A.PENDING, A.DENIED),
        },
    ),
    (
        notification_states.DELIVERY,
        notification_states.transition,
        {(N.PENDING, N.SENT), (N.PENDING, N.FAILED)},
    ),
]

PAIRS = [
    pytest.param(fn, a, b, (a, b) in moves or a == b, id=f"{machine.name}:{a}->{b}")
    for machine, fn, moves in EXPECTED
    for a, b in product(machine.states, machine.states)
]


@pytest.mark.parametrize(("fn", "current", "new", "allowed"), PAIRS)
def test_every_pair(fn: Callable[[str, Any], Any], current: str, new: str, allowed: bool) -> None:
    if allowed:
        assert fn(current, new) == new
        assert fn(str(current), new) == new  # the column holds a plain string
    else:
        with pytest.raises(IllegalTransition) as info:
            fn(current, new)
        assert (info.value.current, info.value.new) == (current, new)
        assert str(info.value) == f"a {info.value.machine} cannot move from '{current}' to '{new}'"


@pytest.mark.parametrize(("machine", "fn", "moves"), EXPECTED, ids=lambda x: getattr(x, "name", ""))
def test_table_is_the_expected_one(
    machine: Machine[Any], fn: Callable[[str, Any], Any], moves: set[tuple[str, str]]
) -> None:
    table = {(a, b) for a, targets in machine.moves.items() for b in targets}
    assert table == moves


def test_unknown_current_state_is_illegal() -> None:
    with pytest.raises(IllegalTransition, match="'bogus'"):
        cert_states.transition("bogus", C.ISSUED)


def test_every_state_has_a_row() -> None:
    class S(StrEnum):
        A = "a"
        B = "b"

    with pytest.raises(ValueError, match="no row"):
        Machine("s", S, {S.A: frozenset({S.B})})


def test_illegal_transition_is_a_409_that_survives_pickling() -> None:
    """DBOS pickles a step's exception; it must come back whole."""
    exc = IllegalTransition("certificate", "rejected", "issued")
    assert isinstance(exc, Conflict) and exc.status == 409
    back = pickle.loads(pickle.dumps(exc))
    assert (back.machine, back.current, back.new, str(back)) == (
        "certificate",
        "rejected",
        "issued",
        str(exc),
    )


def test_status_values_compare_equal_to_the_stored_strings() -> None:
    assert C.AWAITING_DNS == "awaiting_dns" and str(C.AWAITING_DNS) == "awaiting_dns"
    assert {"requested", "awaiting_dns", "awaiting_ca", "issuing"} == cert_states.ACTIVE
    assert {"succeeded", "failed", "superseded"} == deploy_states.FINAL
