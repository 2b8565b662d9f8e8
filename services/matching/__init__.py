"""Matching: a client's policy in, explained proposals out; the client's choices; batches."""
