"""Microsoft Teams incoming webhooks: a MessageCard per notice."""

from __future__ import annotations

from typing import Any

from canary.core.notices import Notice
from canary.notify.facts import facts

NAME = "teams"


def body(notice: Notice) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": notice.title,
        "themeColor": "D00000" if notice.warning else "2EB886",
        "title": notice.title,
        "sections": [
            {
                "text": notice.message,
                "facts": [{"name": k, "value": v} for k, v in facts(notice)],
            }
        ],
    }
