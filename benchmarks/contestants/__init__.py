"""Contestant programs: each runs in its own child process (started by the
scenarios, usually under ``ip netns exec``), does one measured task and
prints one JSON result line. Exit status 3 means "not available here" (the
last stderr line says why)."""
