"""``GET /metrics`` for Prometheus: the web process's own figures (django-prometheus: requests,
responses, database queries) and the platform's, computed from the database at each scrape
so that every web process, on every host, reports the same truth (``moderation/metrics.py``)."""
