"""The demo's scheduling journey passes whatever the day, hour and daylight-saving state.

The services run on a clock the test sets: every day of one week at 23:59 local time
(the last minute before "tomorrow"), and the Saturday night before each of Auckland's
daylight-saving changes (the extra session "tomorrow" falls on the day of the change and
the weekly series runs across it). Each moment gets fresh services and a fresh
organisation, on a clock set to that moment.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import pytest

from alongside.client import AlongsideClient
from alongside.demo import scheduling_journey
from contracts.intake import CLIENT_PARTY_ID, GiveConsent, Stage
from contracts.matching import AcceptProposal
from runtime.clock import ManualClock
from runtime.settings import Settings
from runtime.vault import Vault
from tests.conftest import Start
from tests.support import AUCKLAND, accepted, eligible, intake, supporter, wait_for

WEEK = [date(2027, 3, 1) + timedelta(days=n) for n in range(7)]  # Monday to Sunday
# Auckland leaves daylight saving on Sunday 4 April 2027 and enters it on Sunday 26 September.
DAYLIGHT_SAVING = [date(2027, 4, 3), date(2027, 9, 25)]
MOMENTS = [datetime.combine(day, time(23, 59), tzinfo=AUCKLAND) for day in WEEK + DAYLIGHT_SAVING]
MORE_THAN_WEEKLY = "rules.boundaries.more-than-weekly-without-agreement"


@pytest.mark.parametrize("moment", MOMENTS, ids=[f"{m:%a-%Y-%m-%d-%H%M}" for m in MOMENTS])
async def test_the_scheduling_journey_runs_the_same_at_any_moment(
    moment: datetime, start: Start, clock: ManualClock, client: AlongsideClient, org: str
) -> None:
    clock.set(moment)
    await start()  # every service, on this clock
    today = moment.date()
    await supporter(client, org, "s1", ["sm"], today=today)
    await eligible(client, org, 1)
    await accepted(client, org, intake("c1", ["sm"]))
    await wait_for(client, org, "MatchProposed")
    await accepted(client, org, AcceptProposal(case_id="c1", supporter_id="s1"))
    await wait_for(client, org, "SupportPersonNamed")
    for party in (CLIENT_PARTY_ID, "respondent"):
        await accepted(
            client,
            org,
            GiveConsent(
                case_id="c1",
                party_id=party,
                stages=[Stage.ENTRY],
                given_on=today,
            ),
        )
    await wait_for(client, org, "MatchActivated")

    vault = Vault.of(client.nc.jetstream(), Settings())
    journey = await scheduling_journey(client, client.nc, vault, org, "c1", clock)

    assert journey.refused == {
        "an extra session tomorrow": [MORE_THAN_WEEKLY],
        "help with a legal letter": ["rules.boundaries.outside-peer-role"],
        "someone to speak for me at the hearing": ["rules.boundaries.outside-peer-role"],
        "a 20-minute session": ["rules.boundaries.too-short"],
        "a third session within a week": [MORE_THAN_WEEKLY],
    }
    weekly = [s for s in journey.schedule.sessions if s.kind == "regular"]
    local = [s.start.astimezone(AUCKLAND) for s in weekly]
    # Every week at 18:00 where the organisation works, across a daylight-saving change too.
    assert {t.time() for t in local} == {time(18)}
    assert {(b.date() - a.date()).days for a, b in itertools.pairwise(local)} == {7}
    assert local[0].date() == today + timedelta(days=7)
    assert journey.extra.start.astimezone(AUCKLAND).date() > today
