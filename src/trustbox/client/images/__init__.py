"""The client's image half: the registry client (OCI distribution API), verified blob streaming,
OCI layouts and archives, and push/pull/verify, which call the trust half for signed digests."""
