"""The sellers' REST API: /api/v1/ads/ and /api/v1/categories/ (DRF)."""
