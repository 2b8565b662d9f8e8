"""Bad input at scale: malformed commands and events against the real services.

Starts a real nats-server (embedded, ``sync_interval: always``) in a temporary folder that
holds the whole deployment (its settings and master key given explicitly: nothing of the
machine's own, its ALONGSIDE_* variables or ``~/.alongside``, is read), provisions it,
runs each service in its own process (``alongside up <service>``) and arranges one real
journey (eligible supporters, a case whose match is active and whose sessions go ahead, a
group session), so that absurd values reach the services' decisions and not only their
validation. Then it sends ``--n`` messages (10,000 by default):

  - commands, on every command subject (every command of every service), by request/reply;
  - events, into the ``EVENTS`` stream on every event subject (the consumers of rules,
    matching and scheduling read ``alongside.*.evt.*``), each with a unique ``Nats-Msg-Id``.

What is sent, with a fixed seed:

  - schema-generated: payloads generated from the exported JSON Schemas
    (``catalogue.export``; hypothesis, with hypothesis-jsonschema for the leaves: 0.23.1
    cannot generate objects with this hypothesis, its ``from_object_schema`` calls a
    removed ``many.more()``) and then mutated, guided by the schema: a required field
    dropped, an unknown field added, a value of the wrong type, out of range or of the
    wrong format, null, a value drawn by hypothesis-jsonschema from ``{"not": schema}``;
    or the envelope mutated the same way; or left valid;
  - valid-looking but absurd: dates in year 1 and 9999, offsets of +-23:59, integers of
    2**63 and 10**30, 20,000-character strings with NUL and right-to-left marks, 500
    element lists, ids of the real records arranged first (absurd dates and time zones on
    the arranged case are sent first, one at a time, before the fuzz changes it);
  - hand-made: invalid UTF-8, not JSON, empty, JSON that is not an object, 100,000-deep
    nesting, 1 MB strings, the wrong organisation, an unknown one, an invalid organisation
    token on the subject or in the envelope, absurd envelope times, absurd time zones,
    lone surrogates, NaN and 400-digit numbers, an envelope type that is not the
    subject's, unknown envelope fields, duplicate ids with a different payload, strings
    just under and just over the size limits (64 KiB a command, 256 KiB an event).

What is measured:

  - ``fuzz_unanswered``: commands with no reply within 5 s (a timeout, or no responders);
    each reply must be a known reply, and each rejection must name a field and a reason;
    ``fuzz_handler_failures``: commands answered ``unavailable`` because their handler
    raised (the reason ``runtime.commands.NOT_CARRIED_OUT``; a busy record or state not yet
    readable is ``unavailable`` too, and is no failure); ``fuzz_accepted_schema_invalid``:
    commands accepted although their exported schema refuses them;
  - ``fuzz_crashes``: service processes that exited (each is restarted, so the run goes
    on); ``fuzz_hangs``: a service that stopped answering even its readiness probe for
    60 s (it is killed and restarted);
  - ``fuzz_events_unaccounted``: events that are *invalid for their exported schema*
    (the body is not UTF-8 JSON, or the document fails the JSON Schema of the event type
    its subject names, whose ``type`` is a constant, or the envelope's ``org`` is not the
    subject's, or the subject's organisation token is invalid) and yet are neither
    dead-lettered by any service (a ``DeadLetter`` in ``DEADLETTERS`` whose kept headers
    carry the event's ``Nats-Msg-Id``) nor legitimately ignored (no service handles the
    type named by the subject or by the envelope, and the envelope itself, ``data``
    aside, is valid and of the subject's organisation) nor dropped by the stream as a
    duplicate ``Nats-Msg-Id`` nor refused by the stream at publish (its size limit: the
    publisher is told) nor logged by a consumer as ``unroutable_event`` with its stream
    sequence (an invalid organisation token: no organisation to keep a dead letter
    under; counted as ``fuzz_events_logged_unroutable``). Split into
    ``..._model_rejects`` (the contract's own pydantic model rejects it too: the consumer
    should have dead-lettered it by its own rules, so it was lost) and ``..._lax`` (the
    model accepts what the schema refuses, e.g. a string "7" for an integer, a number
    for the envelope's ``time``, or an envelope ``type`` that is not the subject's: the
    consumers are laxer than the contract);
  - ``fuzz_events_missing_dead_letters``: (event, service) pairs where a service's
    consumer, by its own rules (envelope unreadable or of another organisation, or a
    payload its model rejects for a type it handles), should have dead-lettered an
    event and did not;
  - consumer health once the events have drained (``num_pending``, ``num_ack_pending``,
    ``num_redelivered`` of each durable consumer), and the server's max-deliveries
    advisories;
  - ``fuzz_still_serving``: afterwards a valid SubmitIntake is accepted, each service
    answers a valid command (EvaluateRules, RefuseService, ConfigureScheduling), and the
    new intake flows through rules to matching;
  - memory: each service's RSS (``VmRSS``) before the fuzz, after the commands and at the
    end; ``fuzz_rss_growth_mb_<service>`` is end minus start.

The details (every failure class with an example, the services' error log lines) are
printed to stderr and written to ``--report``. The last line of stdout is one JSON object.

    python -m bench.fuzz [--n 10000] [--pool 30] [--report /tmp/alongside-fuzz-report.json]
    python -m bench.fuzz --quick     # a smoke run, about 30 s: 400 messages from 5 payloads
                                     # a type, events not readable retried for 6 s, not 60

The parts: ``schemas`` (the exported contracts), ``generate`` and ``handmade`` (the
messages), ``plan`` (the whole list, each judged before it is sent), ``commands`` and
``events`` (sending each kind and accounting for it), ``fleet`` (the service processes),
``journey`` (real records before, valid commands after), ``report``; ``shared`` holds what
they share, ``__main__`` the run.
"""
