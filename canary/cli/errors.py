"""Problems a user can fix, in their words: one sentence and an exit code, never a traceback."""

from __future__ import annotations

from datetime import timedelta

NO_CONTROLLER_HINT = "is the canary controller running (kubectl -n canary-system get pods)?"


class UserError(Exception):
    """A problem the user can fix: one sentence and the exit code to leave with."""

    def __init__(
        self, message: str, code: int = 1, transient: bool = False, missing: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient  # the API could not be reached: worth another try
        self.missing = missing  # the Rollout named does not exist


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def crd_missing_message() -> str:
    return (
        "the Rollout CRD (rollouts.canary.dev) is not installed in this cluster: "
        "install it with `canary crd | kubectl apply -f -`"
    )


def forbidden_message(verb: str, namespace: str | None) -> str:
    scope = f"in namespace {namespace}" if namespace else "in all namespaces"
    check = f"kubectl auth can-i {verb} rollouts.canary.dev"
    check += f" -n {namespace}" if namespace else " -A"
    return (
        f"forbidden: your Kubernetes user may not {verb} rollouts.canary.dev {scope}: "
        f"ask for RBAC access (check with `{check}`)"
    )


def parse_timeout(value: str, option: str = "--timeout") -> timedelta:
    from canary.core.durations import parse_duration

    try:
        return parse_duration(0 if value.strip() == "0" else value)  # 0 needs no unit
    except ValueError as error:
        raise UserError(f"{option}: {error}") from None
