"""Benchmark of matching on the seeded synthetic population (services/matching/population.py).

  - one intake against 20,000 supporters: filters, scores, top 3 with explanations;
  - a batch of 5,000 clients against 20,000 supporters (min-cost flow over each
    client's best 20 candidates);
  - the batch objective against the exact optimum (scipy linear_sum_assignment
    over slot copies) on a sample small enough for it, and coverage against the
    most clients any assignment could serve there;
  - coverage of clients whose needs are scarce (a rare language), and the most
    proposals resting on one free slot.
  - end to end over NATS: an embedded nats-server, the services (intake, rules,
    matching) in one subprocess as ``alongside up`` runs them, 300 vetted
    supporters, then intakes one at a time: the time from intake's accepted reply
    to the client's MatchProposed (or ClientWaitlisted) event, which crosses
    intake -> rules (matching policy) -> matching (filters, holds, commit).
    The same run measures a bare request/reply on that server as the baseline.
  - ``alongside import`` end to end: another embedded nats-server and the same services,
    vetted supporters from ``alongside/sample.py`` (2 for every 5 intakes: 2,000 for 5,000,
    with caseloads of up to 30, so every client's 3 proposals leave room), a file of intakes
    from the same module (its own seed), then the real CLI in a subprocess: ``import_5k_s``
    (for ``--import-intakes 5000``; ``import_<n>_s`` otherwise) runs from starting it to
    every client's MatchProposed or ClientWaitlisted event. Beside it, ``import_5k_batch_s``:
    the time spent in ``batch.assign`` inside that import, timed in the services' process by
    a wrapper around it (the services otherwise run as ``alongside up`` runs them), and the
    phases: every policy decided, the ``AssignBatch`` that succeeded, the CLI's exit. The
    default, 1,000 intakes, keeps the run to a few minutes; with 5,000 it takes about 7.
  - the batch is timed ``--batch-runs`` times on the same data: ``batch_5k_x_20k_s`` is the
    min, with the median, the max and the load average beside it (the machine's noise).
The last line is JSON.

    python -m bench.matching [--e2e-intakes 300] [--import-intakes 1000] [--batch-runs 5]
    python -m bench.matching --quick    # 2,000 supporters, batches of 500: a smoke run
"""
