"""The state machine's table, checked directly: every allowed move, and nothing else."""

from __future__ import annotations

import itertools

import pytest

from storage.jobstate import (
    ACTIVE_STATES,
    FINAL_STATES,
    OUTCOME_STATES,
    TRANSITIONS,
    InvalidTransition,
    JobState,
    can_transition,
    check_transition,
)

A, S, R = JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING
OK, FAIL, EXP = JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED
DONE, STUCK, GONE = JobState.DELIVERED, JobState.UNDELIVERABLE, JobState.CANCELLED

# The whole table, written out once more by hand: a change to either must be deliberate.
ALLOWED = {
    (A, S), (A, OK), (A, FAIL), (A, EXP), (A, GONE),
    (S, R), (S, OK), (S, FAIL), (S, EXP), (S, GONE),
    (R, OK), (R, FAIL), (R, EXP), (R, GONE),
    (OK, DONE), (OK, STUCK),
    (FAIL, DONE), (FAIL, STUCK),
    (EXP, DONE), (EXP, STUCK),
    (STUCK, DONE),
}  # fmt: skip


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobState, JobState)))
def test_the_table_allows_exactly_the_documented_moves(current: JobState, target: JobState) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        check_transition("j", current, target)
    else:
        with pytest.raises(InvalidTransition) as refused:
            check_transition("j", current, target)
        assert (refused.value.current, refused.value.target) == (current, target)


def test_every_state_is_in_the_table_and_the_groups_partition_them() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert set(JobState) == ACTIVE_STATES | OUTCOME_STATES | FINAL_STATES
    assert not (ACTIVE_STATES & OUTCOME_STATES or OUTCOME_STATES & FINAL_STATES)
    assert not ACTIVE_STATES & FINAL_STATES


def test_final_states_never_leave_except_a_retried_delivery() -> None:
    assert TRANSITIONS[DONE] == frozenset() and TRANSITIONS[GONE] == frozenset()
    assert TRANSITIONS[STUCK] == {DONE}
    for state in JobState:
        assert state.is_active is (state in ACTIVE_STATES)
        assert state.awaits_delivery is (state in OUTCOME_STATES)
        assert state.is_final is (state in FINAL_STATES)
