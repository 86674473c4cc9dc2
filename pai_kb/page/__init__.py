"""The browser page served at `/` by `pai-kb serve` (static files, loaded with importlib.resources)."""
