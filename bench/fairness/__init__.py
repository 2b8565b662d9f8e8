"""Fairness benchmark (issue 25): nobody is told to wait while a place that fits them is free,
and nobody waiting is passed over by a later client with the same needs.

Black-box, over real processes, as ``bench/pipeline.py`` runs them: a real nats-server from
the wheel (``sync_interval: always``, operator-mode auth), intake, rules, matching and
scheduling each in a process of its own (``alongside up SERVICE``, its own credential, the
shipped settings: the services' sweeps run hourly, so during a run a waitlisted client is
offered again only because an event said a place freed up). The bench connects as the
operator (``admin``). Each scenario runs on a fresh server and fresh services:

  scarce          100 supporters x 5 places (500), 300 intakes, 20 in flight;
  scarce_restart  the same, and the nats-server is killed (SIGKILL; ``--restart-signal
                  term`` for SIGTERM) once a third of the intakes are accepted, and started
                  again ``--down-s`` (1.5 s) later on the same port and store directory;
  ample_restart   100 supporters x 30 places (3,000: a place for everyone), 300 intakes,
                  the same restart.

``--quick``: 30 supporters and 90 intakes (same caps). Seed fixed: every run of a scenario
has the same population; runs differ only by timing.

The population: every supporter fits every client. Supporters are ``alongside.sample``'s
with every method, no affiliations (so no conflict of interest with any client's other
party), cleared for youth work, speaking ``en``, and vetting that passes (a recovery of
1,000 days: every supporter is decided eligible before the burst). Clients are
``sample.intake``'s speaking ``en``, adults, with no ``must`` preference and no safety
concern (nothing rules a method out). So every client has the same needs, and "a place that
fits" is any free slot of any supporter decided eligible during setup. Scores still differ
(lived experience, region): they choose among fitting supporters, not whether one fits.

Clients answer as a client would: half of them (``--answer-share`` 0.5, chosen by the seed),
on seeing their ``MatchProposed`` (the bench follows the events), accept its first proposal
``--answer-delay-s`` (0.5 s) later (``AcceptProposal``, the same envelope again after a
timeout). That keeps one slot for good and frees the other two holds: places free up all
through the run, and waiting clients should get them at once. The other half keep their
proposals (each holds a slot: 3 a client) to the end. Why half: 150 answering clients keep
150 places and 150 silent ones hold 450, 600 wanted of 500, so places run out near the end
and some waiting is legitimate (no slot free), while places keep freeing up before that.
With every client answering (``--answer-share 1``), 300 clients never use up 500 places
(300 kept, the rest held only for the answer's half second); with none (``0``, as in the
issue, it seems: about 166 clients hold every place) no place frees up once taken.

``--restart-on outcomes`` counts ``--restart-at`` in clients with an outcome event instead
of intakes accepted (intake answers a burst far quicker than matching works through it);
``--supporters``, ``--cap`` and ``--intakes`` change a scenario's sizes.

What is followed, live, in the bench process: every message of the organisation's events
(``EVENTS``) and every update of the ``caseloads`` bucket (its stream ``KV_caseloads``, key
``<org>.<supporter_id>``, value a ``contracts.records.Caseload`` with its holds), each by an
ordered consumer made again from the next sequence when it stalls (after the restart).
Each message keeps the server's timestamp, and the two streams are merged by it (a caseload
update first on a tie): that is the order things were stored on the one server. A slot is
free when it is below the supporter's cap and held by no case (a hold counts until its end,
3 days: none ends during a run). ``free places`` at a moment = the sum, over the supporters
eligible at setup, of ``max(cap - holds, 0)`` as the caseloads stood then. A caseload update
the followers missed (the bucket keeps 5 revisions a key) is counted in
``caseload_updates_missed`` (should be 0).

Definitions (per run):

  false_waitlistings
      ``ClientWaitlisted`` events (any constraint) stored at a moment when free places > 0.
      ``_over_20``: free places > 20 at that moment (a margin for a place freed just as the
      decision was made). ``_whole_window``: free places > 0 throughout the ``--window-s``
      (1 s) before the event (the decision was made within it). ``max_free_at_waitlisting``:
      the most free places at any waitlisting. ``_as_seen_live``: free places > 0 as the
      bench's live followers last saw the caseloads when they read the event (what the issue
      measured; lags a little). ``false_waitlisted_clients``: distinct clients.
  taken_meanwhile, taken_meanwhile_false
      waitlistings with constraint ``taken-meanwhile`` (every candidate's slot was gone when
      matching tried to hold it), and of those the ones with free places > 0.
  order_inversions
      pairs of clients (A, B), A's ``IntakeReceived`` stored before B's (same needs: every
      pair here), such that B got a ``MatchProposed`` while A was waitlisted: A's latest
      outcome event (``MatchProposed`` or ``ClientWaitlisted``) before B's proposal is a
      ``ClientWaitlisted`` (so A's next ``MatchProposed``, if any, comes after). Each pair
      counted once. ``passed_over_clients``: distinct A's; ``overtaking_clients``: distinct
      B's.
  still_waiting_with_free_places_at_quiet
      at quiet (below), clients whose ``matches`` record (``CaseMatch.status``) is
      ``waitlisted`` while the ``caseloads`` bucket, read then, shows free places > 0 (0 when
      no place is free). ``free_places_at_quiet`` and ``supporters_with_free_at_quiet`` say
      how many and where; ``waitlisted_at_quiet`` counts waiting clients either way.
  quiet
      after the burst (every intake answered) and the restart: no new event for
      ``--quiet-s`` (10 s), no client answer pending, every service's durable consumer idle;
      then a final wait of ``--final-wait-s`` (20 s) before reading the buckets. ``to_quiet_s``:
      from the end of the burst to the last event stored before quiet. ``events_in_final_wait``
      counts events that came during the final wait (should be 0).
  accepted, lost
      intakes answered ``CommandAccepted`` (each retried with the same envelope after a
      timeout or a "retry later", up to 120 s); accepted intakes with no outcome event at all.
  wait_s_p50, wait_s_max
      for clients waitlisted and later proposed: from the first ``ClientWaitlisted`` of a
      spell to the next ``MatchProposed`` (server timestamps).

Progress and each run's figures go to stderr (with the warnings and errors the services
logged, by event name); the last line on stdout is one JSON object: every run's figures,
and per scenario each key figure as a list over its runs.

    python -m bench.fairness                        # the three scenarios, one run each
    python -m bench.fairness --quick                # smaller, about a minute a scenario
    python -m bench.fairness --runs 3 --scenarios scarce,ample_restart --keep /tmp/fair
"""
