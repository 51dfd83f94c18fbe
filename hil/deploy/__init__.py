"""Deploy bundles to a board into A/B slots on trial, and roll back (hil/deploy/deploy.py); the
runtime's wheels for the board's platform (hil/deploy/runtime.py)."""
