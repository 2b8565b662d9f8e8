"""Intake: supporters and their vetting evidence, client intakes, stages, consent."""
