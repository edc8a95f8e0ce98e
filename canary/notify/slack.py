"""Slack incoming webhooks: one message with a coloured attachment per notice."""

from __future__ import annotations

from typing import Any

from canary.core.notices import Notice
from canary.notify.facts import facts

NAME = "slack"


def body(notice: Notice) -> dict[str, Any]:
    color = "danger" if notice.warning else "good"
    return {
        "text": f"{notice.title}: {notice.message}",
        "attachments": [
            {
                "color": color,
                "title": notice.title,
                "text": notice.message,
                "fields": [{"title": k, "value": v, "short": True} for k, v in facts(notice)],
            }
        ],
    }
