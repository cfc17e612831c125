"""Decide what a finished process means for its node. Pure, no Django.

The task's behaviours (seed service): a non-zero exit listed in
``custom_exit_status`` gets ``custom_exit_behaviour``; any other non-zero exit
fails; a clean exit with missing out-glob files gets
``incomplete_outputs_behaviour``. Each behaviour is ``continue`` (the node
succeeds), ``terminate`` (the node succeeds and the submission stops,
complete) or ``fail``.
"""
from dataclasses import dataclass

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    succeeded: bool
    terminate: bool = False  # stop the whole submission after this node, as complete
    message: str = ""


def judge(*, exit_code, timed_out=False, timeout=None, missing=(), custom_statuses=(), custom_behaviour="continue", incomplete_behaviour="fail", reason=""):
    """Return the verdict for one finished (or killed) process.

    ``reason`` is the executor's word on how the run ended (a scheduler's
    state); a failure's message carries it. A run with no exit status
    (``exit_code`` None) fails.
    """
    verdict = _judge(exit_code, timed_out, timeout, missing, custom_statuses, custom_behaviour, incomplete_behaviour)
    if reason and not verdict.succeeded:
        return Verdict(False, message=f"{verdict.message}: {reason}")
    return verdict


def _judge(exit_code, timed_out, timeout, missing, custom_statuses, custom_behaviour, incomplete_behaviour):
    if timed_out:
        return Verdict(False, message=f"timed out after {timeout} s" if timeout else "timed out")
    if exit_code is None:
        return Verdict(False, message="ended without an exit status")
    if exit_code != 0:
        if exit_code in custom_statuses:
            return _apply(custom_behaviour, f"exited with custom status {exit_code}")
        if exit_code < 0:
            return Verdict(False, message=f"killed by signal {-exit_code}")
        return Verdict(False, message=f"exited with status {exit_code}")
    if missing:
        return _apply(incomplete_behaviour, f"expected outputs missing: {', '.join(missing)}")
    return Verdict(True)


def _apply(behaviour, reason):
    if behaviour == "continue":
        return Verdict(True, message=f"{reason}; continuing")
    if behaviour == "terminate":
        return Verdict(True, terminate=True, message=f"{reason}; stopping the submission")
    return Verdict(False, message=reason)
