"""Shared test helpers (set-up of projects and services, waits on conditions).

Test modules import from here, never from one another: a ``test_*.py`` module holds tests only.
"""
