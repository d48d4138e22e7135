"""Media benchmark: capture CPU and post-capture processing time for one 60-second chunk."""
