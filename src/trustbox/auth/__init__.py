"""Authentication and authorisation: docker token auth (scopes, JWT tokens, the token server),
htpasswd, access rules, an ASGI middleware for the servers, and docker-style login credentials.
See ``docs/auth.md``."""
