"""Local stand-ins for remote services that pipelines talk to (for development, tests and the embedded default).

Each emulator is a self-contained server that speaks the remote service's real API; it imports nothing of
the project above ``contract``/``data``.
"""
