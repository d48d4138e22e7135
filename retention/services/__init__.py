"""Every write of retention: ``purge`` (deleting what the policies allow), ``holds`` (holds and policies)
and ``scratch`` (the sweep of workers' scratch space)."""
