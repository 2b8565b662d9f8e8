"""Hand-made bad input: bytes no schema would generate, and absurd dates and time zones on the
arranged records."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from bench.fuzz.generate import ABSURD_DATE_TIMES, nodes, put
from bench.fuzz.shared import (
    BAD_SUBJECT_ORG,
    MAX_BODY,
    OTHER_ORG,
    SOURCE,
    UNKNOWN_ORG,
    Contract,
    Doc,
    Real,
    encode,
    subject_for,
)
from contracts.envelope import MAX_COMMAND_BYTES, MAX_EVENT_BYTES
from contracts.scheduling import SchedulingPolicy
from runtime.clock import SYSTEM

HandMade = tuple[str, str, bytes]  # recipe, subject, body


def _big_string_doc(contract: Contract, base: Doc, where: str, size: int = MAX_BODY) -> bytes:
    """The envelope grown to about ``size`` bytes by one long string."""
    doc = copy.deepcopy(base)
    room = max(size - len(encode(doc)) - 20, 1)
    if where == "source":
        doc["source"] = "s" * room
    else:
        strings = [
            p
            for p, s, v in nodes(contract.envelope, doc)
            if len(p) > 1 and p[0] == "data" and isinstance(v, str)
        ]
        if strings:
            put(doc, strings[0], "m" * room)
        else:
            doc["data"]["zz_note"] = "m" * room
    return encode(doc)


def _deep(levels: int, kind: str) -> str:
    return "[" * levels + "]" * levels if kind == "list" else '{"a":' * levels + "1" + "}" * levels


def _with_raw_data(base: Doc, raw_data: str) -> bytes:
    doc = copy.deepcopy(base)
    doc["data"] = "@@DATA@@"
    return encode(doc).replace(b'"@@DATA@@"', raw_data.encode())


def _raw_number(base: Doc, contract: Contract, literal: str) -> bytes:
    """The payload with its first number (or a new field) written as ``literal``."""
    doc = copy.deepcopy(base)
    numbers = [
        p
        for p, _, v in nodes(contract.envelope, doc)
        if len(p) > 1 and p[0] == "data" and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if numbers:
        put(doc, numbers[0], "@@NUMBER@@")
    else:
        doc["data"]["zz_number"] = "@@NUMBER@@"
    return encode(doc).replace(b'"@@NUMBER@@"', literal.encode())


def _surrogate(base: Doc, contract: Contract) -> bytes:
    doc = copy.deepcopy(base)
    strings = [
        p
        for p, s, v in nodes(contract.envelope, doc)
        if len(p) > 1
        and p[0] == "data"
        and isinstance(v, str)
        and "pattern" not in s
        and "enum" not in s
        and "format" not in s
        and "const" not in s
    ]
    target = strings[0] if strings else ("data", "zz_text")
    put(doc, target, "@@TEXT@@")
    return encode(doc).replace(b'"@@TEXT@@"', b'"lone \\ud800 surrogate"')


def handmade(contract: Contract, base: Doc, other: Doc | None) -> list[HandMade]:
    """The hand-made bad inputs for one subject; ``base`` is a valid envelope for it,
    ``other`` a valid envelope of another type."""
    subject = subject_for(contract)
    valid = encode(base)
    limit = MAX_COMMAND_BYTES if contract.kind == "command" else MAX_EVENT_BYTES
    made: list[HandMade] = [
        ("invalid_utf8_in_string", subject, valid.replace(SOURCE.encode(), b"bench/\xff\xfe\xc3(")),
        ("invalid_utf8_body", subject, b"\xff\xfe\xfd" * 40),
        ("not_json", subject, b"{this is not json"),
        ("empty_body", subject, b""),
        ("json_not_an_object", subject, b"[1, 2, 3]"),
        ("json_null", subject, b"null"),
        ("deep_nesting_lists_100k", subject, _with_raw_data(base, _deep(100_000, "list"))),
        ("deep_nesting_objects_10k", subject, _with_raw_data(base, _deep(10_000, "object"))),
        ("deep_nesting_lists_500", subject, _with_raw_data(base, _deep(500, "list"))),
        ("string_1mb_in_payload", subject, _big_string_doc(contract, base, "data")),
        ("string_1mb_in_envelope_source", subject, _big_string_doc(contract, base, "source")),
        ("string_under_size_limit", subject, _big_string_doc(contract, base, "data", limit - 64)),
        ("string_over_size_limit", subject, _big_string_doc(contract, base, "data", limit + 64)),
        ("wrong_org_in_envelope", subject, encode({**base, "org": OTHER_ORG})),
        ("unknown_org", subject_for(contract, UNKNOWN_ORG), encode({**base, "org": UNKNOWN_ORG})),
        (
            "invalid_org_on_subject",
            subject_for(contract, BAD_SUBJECT_ORG),
            encode({**base, "org": BAD_SUBJECT_ORG}),
        ),
        ("invalid_org_in_envelope", subject, encode({**base, "org": "Not An Org!"})),
        (
            "envelope_time_year_1_plus_23_59",
            subject,
            encode({**base, "time": "0001-01-01T00:00:00+23:59"}),
        ),
        (
            "envelope_time_year_9999_minus_23_59",
            subject,
            encode({**base, "time": "9999-12-31T23:59:59-23:59"}),
        ),
        ("envelope_time_feb_30", subject, encode({**base, "time": "2024-02-30T10:00:00Z"})),
        ("envelope_time_naive", subject, encode({**base, "time": "2024-01-01T10:00:00"})),
        (
            "envelope_time_offset_25h",
            subject,
            encode({**base, "time": "2024-01-01T10:00:00+25:00"}),
        ),
        ("envelope_time_number", subject, encode({**base, "time": 1e20})),
        ("envelope_unknown_field", subject, encode({**base, "zz_unknown": True})),
        ("envelope_without_data", subject, encode({k: v for k, v in base.items() if k != "data"})),
        ("envelope_data_null", subject, encode({**base, "data": None})),
        ("envelope_data_list", subject, encode({**base, "data": [base["data"]]})),
        ("schemaversion_99", subject, encode({**base, "schemaversion": "99.0"})),
        ("specversion_2", subject, encode({**base, "specversion": "2.0"})),
        ("id_with_empty_token", subject, encode({**base, "id": "a..b"})),
        ("id_65_chars", subject, encode({**base, "id": "i" * 65})),
        ("id_non_ascii", subject, encode({**base, "id": "ïd-ü"})),
        ("number_nan", subject, _raw_number(base, contract, "NaN")),
        ("number_infinity", subject, _raw_number(base, contract, "-Infinity")),
        ("number_1e999", subject, _raw_number(base, contract, "1e999")),
        ("number_400_digits", subject, _raw_number(base, contract, "9" * 400)),
        ("lone_surrogate_in_text", subject, _surrogate(base, contract)),
        (
            "raw_utf8_emoji_and_rtl",
            subject,
            encode({**base, "source": "bench/\U0001f600\u202e"}, ascii_only=False),
        ),
    ]
    if other is not None:
        made.append(("envelope_type_not_the_subjects", subject, encode(other)))
    return made


def daylight_saving_edges(zone_name: str, count: int = 4) -> list[str]:
    """02:30 local on the next days the zone's offset changes, as each offset reads it: a
    moment that happens twice, and one that never happens."""
    zone, now, edges = ZoneInfo(zone_name), SYSTEM(), []
    for days in range(1, 800):
        day = (now + timedelta(days=days)).astimezone(zone).date()
        night, morning = (datetime.combine(day, clock, zone) for clock in (dt_time(0), dt_time(4)))
        if night.utcoffset() != morning.utcoffset():
            at = datetime.combine(day, dt_time(2, 30), zone)
            edges += [at.isoformat(), at.replace(fold=1).isoformat()]
    return edges[:count]


def absurd_scheduling(real: Real) -> list[tuple[str, str, Doc]]:
    """Hand-made absurd dates and time zones on the arranged case: (recipe, command, data)."""
    case, session, supporter = real.case_ids[0], real.session_ids[-1], real.supporter_ids[0]
    made: list[tuple[str, str, Doc]] = []
    for moment in daylight_saving_edges(SchedulingPolicy().time_zone):
        made += [
            (
                "absurd_daylight_saving_live_record",
                "BookSession",
                {"case_id": case, "start": moment, "minutes": 60, "method": "phone"},
            ),
            (
                "absurd_daylight_saving_live_record",
                "RescheduleSession",
                {"case_id": case, "session_id": session, "start": moment},
            ),
        ]
    for moment in ABSURD_DATE_TIMES[:4]:
        made += [
            (
                "absurd_date_live_record",
                "BookSession",
                {"case_id": case, "start": moment, "minutes": 60, "method": "phone"},
            ),
            (
                "absurd_date_live_record",
                "RescheduleSession",
                {"case_id": case, "session_id": session, "start": moment},
            ),
            (
                "absurd_date_live_record",
                "ProposeMeetingTime",
                {"case_id": case, "by": "client", "start": moment},
            ),
            ("absurd_date_live_record", "GoAhead", {"case_id": case, "first_session": moment}),
            (
                "absurd_date_live_record",
                "CreateGroupSession",
                {
                    "group_id": f"g{len(made)}",
                    "facilitator_id": supporter,
                    "start": moment,
                    "minutes": 60,
                    "method": "video",
                    "capacity": 5,
                },
            ),
        ]
    made += [
        ("absurd_date_live_record", "ExtendService", {"case_id": case, "until": day})
        for day in ("9999-12-31", "0001-01-01", "2200-01-01")
    ]
    zones = (
        "Mars/Olympus_Mons",
        "",
        "../../../../etc/passwd",
        "UTC",
        "Etc/GMT+12",
        "Pacific/Kiritimati",
        "Europe/London\u0000",
        "America",
        "localtime",
        "Factory",
        "posixrules",
        "EST5EDT",
        "x" * 5000,
    )
    for zone in zones:
        made.append(("absurd_time_zone", "ConfigureScheduling", {"policy": {"time_zone": zone}}))
        soon = (SYSTEM() + timedelta(days=3)).isoformat()
        made.append(
            (
                "absurd_date_after_time_zone",
                "BookSession",
                {"case_id": case, "start": soon, "minutes": 60, "method": "phone"},
            )
        )
    made.append(("absurd_time_zone", "ConfigureScheduling", {"policy": {}}))
    return made
