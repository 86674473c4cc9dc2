"""The language model behind one small interface: any OpenAI-compatible chat endpoint (OpenAI, Ollama,
llama.cpp server, LM Studio, vLLM) through the `openai` client, streamed.

Every failure becomes one `LLMError` line naming the endpoint and what to do. The API key is read from
the environment variable the config names and is never logged, printed or put in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pai_kb.errors import LLMError
from pai_kb.urls import redacted

__all__ = ["ChatModel", "LLMSettings"]

# The client retries 429, 5xx and dropped connections itself, with exponential backoff.
MAX_RETRIES = 2


@dataclass(frozen=True)
class LLMSettings:
    """An OpenAI-compatible chat endpoint: URL, model, the env var holding its key, timeout in seconds."""
    base_url: str
    model: str
    api_key_env: str | None = None  # no name, no key sent
    timeout: float = 60.0
    temperature: float = 0.1


class ChatModel:
    """A streaming client for one chat endpoint; the API key is read from the named env var only."""
    def __init__(self, settings: LLMSettings) -> None:
        import openai

        self.settings = settings
        # Local servers (Ollama, llama.cpp) need no key, but the client insists on one. A key is read only
        # from the variable the person named for this endpoint (see Config.llm_api_key_env).
        key = (os.environ.get(settings.api_key_env) if settings.api_key_env else None) or "no-key"
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout,
                                     max_retries=MAX_RETRIES)

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        """The model's reply to `messages`, token by token as text pieces. Raises LLMError when the endpoint
        refuses the key, lacks the model, times out, is unreachable, rate limits or answers an HTTP error."""
        import openai

        s = self.settings
        where = f"LLM endpoint {redacted(s.base_url)}"
        try:
            stream = self._client.chat.completions.create(model=s.model, messages=list(messages),
                                                          temperature=s.temperature, stream=True)
            for event in stream:
                for choice in event.choices or ():
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        except openai.AuthenticationError as exc:
            fix = f"put a valid key in ${s.api_key_env}" if s.api_key_env else "set llm.api_key_env to the variable holding your key"
            raise LLMError(f"{where} refused the API key (401): {fix}") from exc
        except openai.NotFoundError as exc:
            raise LLMError(f"{where} has no model '{s.model}' (404): set llm.model to one it serves") from exc
        except openai.APITimeoutError as exc:
            raise LLMError(f"{where} did not answer within {s.timeout:g} s: raise llm.timeout or check the server") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach {where}: is the server running? check llm.base_url") from exc
        except openai.RateLimitError as exc:
            raise LLMError(f"{where} is rate limiting (429) after {MAX_RETRIES + 1} tries: wait and retry") from exc
        except openai.APIStatusError as exc:
            tries = f" after {MAX_RETRIES + 1} tries" if exc.status_code >= 500 else ""
            raise LLMError(f"{where} answered HTTP {exc.status_code}{tries}: check the server's logs, "
                           "or retry later") from exc
