"""Plain words for every code a page would otherwise show: a stage, a status, a session's
kind, a way to meet, a reason. Pages use the ``plain`` filter (``{{ case.stage|plain("stage") }}``);
a code with no label here is shown as words made from the code itself (``initial_meeting``:
"initial meeting"), never as the code. Pure: no I/O.
"""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "stage": {
        "entry": "Entry",
        "early_resolution": "Early resolution",
        "investigation": "Investigation",
        "conciliation": "Conciliation",
        "adjudication": "Adjudication",
        "closed": "Closed",
    },
}


def plain(code: object, domain: str) -> str:
    """``code`` in plain words, as the ``domain`` (``stage``, ``session_kind``...) names it."""
    if code is None:
        return ""
    text = str(getattr(code, "value", code))
    return LABELS.get(domain, {}).get(text) or text.replace("_", " ").replace("-", " ")
