"""The contract between Groundswell's services: what every service may import, and nothing else.

- `events`: the event models on the stream (versions, upcasting, encoding; golden files in
  tests/contract/golden), and where they go: the stream, its subjects, the consumers' names.
- `counts`: the count document each petition's count is served as, and the milestone ladder.
- `internal_api`: the models of signing's internal HTTP API, which the notifier calls.

It imports no other Groundswell code (tests/unit/test_layers.py): the platform code services run
on is `shared/`, and each service is under `services/`.
"""
