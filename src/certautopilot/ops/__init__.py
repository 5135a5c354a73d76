"""What operators ask a running service: is it ready (``readiness``), what are its figures
(``metrics``). Reads across the domains; writes nothing."""
