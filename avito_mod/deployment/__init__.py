"""Running on several machines: what each process's role requires, checked at start-up.

A process started by the units in ``deploy/`` says what it is with ``AVITO_ROLE`` (``web``,
``inference``, ``training`` or ``beat``). With a role set, the settings that only work on one
machine (SQLite, the embedded broker, photos and models on the local disk, debug mode)
stop it at start-up with every problem named, instead of failing later and elsewhere: a
worker on another host looking for a photo that is on the web host's disk. With no role
(``bin/run``, the tests, a laptop) nothing is required.
"""
