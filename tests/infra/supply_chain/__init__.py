"""Image signature tests (a package: its conftest must not shadow tests/infra/conftest.py)."""
