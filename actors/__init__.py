"""The execution engine: one coordinator actor per run, one actor per block."""

ACTORFLOW = True  # tells this package from another project's of the same name
