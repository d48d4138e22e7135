"""Outbound traffic: the address policy (egress, pure), the deployment's rule (policy), and the one HTTP
transport that resolves once, checks, and connects to the address it checked (transport)."""
