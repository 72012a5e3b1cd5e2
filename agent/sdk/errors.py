"""Exceptions a script can see from the agent object."""

from __future__ import annotations


class ActionFailed(Exception):
    """A device action could not be done; the message names the action and says why."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(message)
        self.action = action


class AgentError(RuntimeError):
    """The agent could not serve a call (a bug or a lost link inside the agent, not the script)."""


class StopAutomation(BaseException):
    """Raised by `agent.control.stop_current_automation()` to end the script at once.

    A BaseException, so that a script's `except Exception:` does not swallow it.
    """
