"""The conformance suite of pytest-hdp, its lab topologies (labs/) and quirk profiles
(profiles/). Installed as `pytest_hdp.conformance`: `pytest --pyargs pytest_hdp.conformance`."""
