"""The pure heart of Ferry: snapshot model, catalog and profiles, rules, diff, plan.

Nothing here performs I/O (besides reading the packaged catalog). Every function is a
pure function of its arguments, so plans are reproducible and testable without a
database.
"""
