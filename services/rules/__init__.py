"""Rules: ops-editable rulesets for eligibility, matching policy, consent and boundaries.

``language`` reads and checks rules files, ``compiler`` turns conditions into
durable_rules conditions, ``engine`` is the only module that imports
durable_rules, ``reference`` is an independent evaluator used as a test
oracle, ``bundle`` resolves defaults plus organisation overrides and runs
their cases; the service itself is ``app``/``handlers``/``domain``/``adapters``.
"""
