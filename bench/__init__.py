"""wireline's benchmark suite (``make bench``): see bench/README.md.

Modules: ``cli`` (plan, alternation, progress), ``worker`` (one measurement in a
fresh process), ``scenarios`` (S1-S4), ``idle`` (RSS per idle connection, cost
versus pool size), ``server`` (nginx on loopback), ``base``, ``clients``,
``peers``, ``raw`` (the raw floor), ``naive`` (h11 / h2 alone), ``report``;
and, outside ``make bench``, ``inproc`` (wireline's own Python per request, timed)
and ``instructions`` (the same exchange, its instructions counted by valgrind).
"""
