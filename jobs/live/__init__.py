"""Live events: the one Redis listener per web process (hub), the wire format (wire), and publishing to
Pushpin (grip). The event table stays the truth; these only wake listeners."""
