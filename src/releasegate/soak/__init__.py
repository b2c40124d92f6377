"""``releasegate soak``: load for hours under a fast guard, the full phase gate every N
minutes, one decision at the end or at the first sustained breach (then the rollback hook).

* ``rules``: k6-style thresholds and durations;
* ``guard``: pure; live stats over a sliding window, breaches held for their grace;
* ``timeline``: intervals folded into fixed-width rows (memory flat over days);
* ``state``: ``state.json`` (atomic, every interval) and ``timeline.jsonl``: resumable;
* ``progress``: a rich panel on a terminal, throttled plain lines elsewhere;
* ``slowatch``, ``fullgate``: the phase's SLO checks and its full gate, in the background;
* ``outcomes``: what the decision is taken on (load, SLO checks, the last full gate);
* ``runner``: the loop and the end (one ``gate.run_round``); ``command``: the CLI wiring.

See docs/soak.md.
"""
