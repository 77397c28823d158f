"""The OCI core: digests, media types, descriptors, manifests and image references.

Pure (no I/O, no clock), shared by the client (``trustbox.client``) and the registry
(``trustbox.registry``), which maps the core's errors onto its HTTP errors.
"""
