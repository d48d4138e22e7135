"""Secrets and their formats: sealing at rest with rotatable keys (crypto), Standard Webhooks signatures
(signing), the API key format (apikeys)."""
