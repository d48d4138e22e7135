"""The HTTP API of jobs (v1): views, the validation of what clients send, the OpenAPI document, API key
authentication, request rates, the event stream. Only config/urls.py and the settings point here."""
