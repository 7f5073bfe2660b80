"""Replicas of the server on Ray Serve: the same app in N processes or machines, each with
its own engines, sharing the database and the rate limiter, and a router that sends a
prompt to the replica whose cache most likely holds its start."""
