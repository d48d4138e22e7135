"""Every write of the webhooks app: endpoints (endpoints.py) and deliveries (deliveries.py)."""
