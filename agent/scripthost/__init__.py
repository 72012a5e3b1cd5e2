"""The script host: the child process that runs one task's user script.

Started by agent/runner.py as `python -m agent.scripthost --fd N` in the task's temp dir, with the
daemon's end of a socketpair on fd N. It loads the script, builds the `agent` object (agent/sdk)
over that channel, runs `main(agent)`, reports how it ended and exits. It imports only what it
needs (asyncio, pydantic and the SDK), so that a script's first call comes soon after the spawn.
"""
