"""What ``bench/faults.py`` runs on: its own services (``services``), sellers posting ads
(``sellers``), the harness that starts everything and counts what happened to the ads
(``harness``), the faults themselves (``scenarios/``, by what they break) and the report
(``report``)."""
