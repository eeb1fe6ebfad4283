"""Cache keys that one stage writes and another reads, named once."""

#: Id of the active model version: the lifecycle writes it on activation, serving polls it.
ACTIVE_VERSION = "recommendations:active-version"
#: The dropped-events metric (count, first and last time): capture writes it, the admin shows it.
DROPPED_EVENTS = "recommendations:dropped-events"
#: The running experiments (serving reads them): written empty whenever an experiment changes.
EXPERIMENTS = "recommendations:experiments"
#: Prefix of a signed-in user's assignment unit (their first browser or device, see serving/experiments.py).
ASSIGNMENT_UNIT = "recommendations:unit:"
