"""The execution engine: one coordinator actor per run, one actor per block."""
