"""The path checks, free of pytest: what the plugin's fixtures hand to tests, and what the
conformance suite imports as a package.

- `rule` — the one rule: observed answer -> pass / xfail / xpass / fail / inconclusive /
  error, for delivery cases and the chapter's statements alike;
- `delivery` — a probed case held to a profile's expectation or to a test's own;
- `chapter` — the UDP and IP fragmentation chapter's checkable statements;
- `check` — one statement checked on one path;
- `path` — both ends of a path, and the kernel settings a check holds;
- `support` — the moves the chapter tests share (hand-built datagrams, the sentinel).
"""
