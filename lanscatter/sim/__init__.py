"""The swarm simulator and its model of links."""
