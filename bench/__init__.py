"""``make bench``: acmeali side by side with certbot and lego on one local Pebble (issue 7).

Not part of CI (too slow); ``tests/test_bench_smoke.py`` runs a tiny slice of it.
"""
