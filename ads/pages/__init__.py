"""The sellers' web pages: /, /accounts/…, /ads/… (Django views and forms)."""
