"""Example Lambda-style handlers served by `make run` (see wsgw.yaml)."""
