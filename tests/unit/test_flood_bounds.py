"""The CLI's flood bounds are the agent's: a value the agent would refuse is a usage error
before anything starts."""

from hdp import stats_command
from hdp.agent import messages


def test_the_command_line_bounds_a_flood_as_the_agent_does():
    assert stats_command.MAX_FLOOD_COUNT == messages.MAX_FLOOD_COUNT
    assert stats_command.MAX_FLOOD_SIZE == messages.MAX_FLOOD_SIZE
