"""trustbox: Docker Content Trust (Notary v1 / TUF) server, OCI registry and client."""

__version__ = "0.1.0"
