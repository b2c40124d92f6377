"""Load checks on locust: our recorder inside the locust child, the channel it writes, the
supervised run, and k6-style thresholds judged on exact (HDR) percentiles.

Nothing in this package imports locust except ``locust_main``, the child's entry point.
See docs/load.md.
"""
