"""The HTTP verification service: FastAPI routes over the gallery, API keys, the audit log, bounded uploads."""
