"""The client's trust half: notary's HTTP API, the TUF update, the local cache, publishing and the
``docker trust`` verbs. Imports the shared client modules (``dockerenv``, ``pinning``, ``transport``,
``capped``, ``errors``) and the core; of the image half only ``images.distribution`` (``trust sign``
signs the manifest the registry serves)."""
