"""Rules of the job queue that do not depend on HTTP: states, data items, quotas, access."""
