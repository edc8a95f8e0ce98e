"""The facts every chat message shows, in order."""

from __future__ import annotations

from canary.core.notices import Notice


def facts(notice: Notice) -> list[tuple[str, str]]:
    shown = [
        ("Phase", notice.phase or "-"),
        ("Stage", notice.stage or "-"),
        ("Canary weight", f"{notice.canary_weight}%"),
        ("Versions", f"{notice.stable_version or '-'} → {notice.canary_version or '-'}"),
    ]
    for gate in notice.failed_gates:
        value = "no value" if gate.value is None else f"{gate.value:.4g}"
        shown.append((f"Gate {gate.name}", f"{value} (threshold {gate.threshold or '-'})"))
    return shown
