"""Where a job's files live, and the one way in and out of them (docs/architecture.md, "Storage").

- ``keys``: every object's key, namespaced by retention class, client and job, and the check that a key
  lies in its tenant's namespace.
- ``files``: the seam: reading, writing and deleting stored files, presigned URLs, the bucket's lifecycle
  rules. With ``sinks`` (streaming writes), it is the only code that talks to S3 or the storage folder,
  and every failure leaves it as one classified ``StorageError``.
- ``sinks``: streaming writes with flat memory (a multipart upload, or a temporary file renamed).
- ``links``: signed download links to a stored object.
"""
