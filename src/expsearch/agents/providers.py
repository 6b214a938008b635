"""LLM calls through the official SDKs, with our retries, timeouts and costs.

    settings = ProviderSettings.from_dict("agents.llm.claude", params["agents"]["llm"]["claude"])
    provider = make_provider(settings)               # the key from os.environ[settings.api_key_env]
    # tests: make_provider(settings, {"VAR": "key"}, sleep=waits.append)  records the backoff
    reply = provider.complete(system, prompt)        # LLMReply: text, tokens, cost_usd, attempts
    # or ProviderError with .kind: missing_key | auth | rate_limit | server | timeout
    #                              | connection | bad_request | empty

Claude goes through `anthropic` (Messages API), Gemini through
`google-genai` (generateContent); `base_url` points either at a proxy or,
in tests, at a loopback server. The SDKs' own retries are off so that one
policy applies to both: 429, 5xx, timeouts and connection errors are
retried `max_retries` times with exponential backoff (a numeric
`retry-after` header wins, capped at 60 s); auth and other 4xx errors, and
an empty answer, are not. An empty answer was still billed: its
ProviderError carries the reply (`.reply`, with tokens and cost) so that
the call is counted. The key is read from the environment variable the
settings name and is never part of a message, a repr or a log line.
`temperature` must stay None for Anthropic: SDK 2.12's Messages API has no
sampling parameters, and settings that ask for one are rejected up front.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

RETRYABLE = ("rate_limit", "server", "timeout", "connection")
MAX_RETRY_AFTER_S = 60.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderSettings:
    provider: str  # anthropic | gemini
    model: str
    api_key_env: str  # the NAME of the variable holding the key
    temperature: float | None = None  # None: the provider's default
    max_tokens: int = 4096
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 2.0
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    base_url: str | None = None

    def __post_init__(self) -> None:
        # Checked here, not only in from_dict, so that no invalid settings exist at all.
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider: {self.provider!r} is not one of {list(PROVIDERS)}")
        if self.provider == "anthropic" and self.temperature is not None:
            # anthropic 2.12's Messages.create has no sampling parameters at all.
            raise ValueError(
                "temperature: the Anthropic Messages API (SDK 2.12) takes no temperature; "
                "set it to null"
            )
        for name, value, lowest in (("max_tokens", self.max_tokens, 1),
                                    ("max_retries", self.max_retries, 0),
                                    ("backoff_s", self.backoff_s, 0)):  # fmt: skip
            if value < lowest:
                raise ValueError(f"{name}: {value!r} is below {lowest}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: {self.timeout_s!r} is not positive")

    @classmethod
    def from_dict(cls, name_for_errors: str, raw: Mapping[str, Any]) -> ProviderSettings:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{name_for_errors}: unknown key(s) {unknown}; known: {sorted(known)}")
        missing = [key for key in ("provider", "model", "api_key_env") if key not in raw]
        if missing:
            raise ValueError(f"{name_for_errors}: missing {missing}")
        try:
            return cls(**raw)
        except ValueError as exc:  # name the settings block the bad value came from
            raise ValueError(f"{name_for_errors}.{exc}") from None

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.price_input_per_mtok + output_tokens * self.price_output_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class LLMReply:
    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int
    seconds: float


class ProviderError(RuntimeError):
    """A call that failed for good; `kind` says why, `attempts` how many calls were made,
    `reply` the billed answer when there was one (its text unusable, e.g. empty)."""

    def __init__(self, kind: str, message: str, attempts: int = 0, reply: LLMReply | None = None):
        self.kind, self.attempts, self.reply = kind, attempts, reply
        super().__init__(
            f"{kind}: {message}" + (f" (after {attempts} attempts)" if attempts else "")
        )


@dataclass
class _Failure:
    kind: str
    message: str
    retry_after_s: float | None = None


class Provider:
    """One LLM endpoint. Subclasses make one SDK call (`_call`) and sort its
    exceptions into kinds (`_failure`); retries and records live here."""

    name = "provider"

    def __init__(self, settings: ProviderSettings, key: str, sleep: Callable[[float], Any]):
        self.settings = settings
        self._sleep = sleep
        # A closure, not an attribute: vars() and reprs of the provider never show the key.
        self._scrub = lambda message: message.replace(key, "***")
        self._client = self._make_client(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.settings.model!r})"

    def complete(self, system: str, prompt: str) -> LLMReply:
        start = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            try:
                text, tokens_in, tokens_out = self._call(system, prompt)
            except ProviderError:
                raise
            except Exception as exc:  # each SDK raises its own classes; _failure sorts them
                failure = self._failure(exc)
                if failure is None:
                    raise  # not an API or transport fault: a bug, which must not pass as one
                if failure.kind not in RETRYABLE or attempts > self.settings.max_retries:
                    raise ProviderError(
                        failure.kind, self._scrub(failure.message), attempts
                    ) from None
                wait = self.settings.backoff_s * 2 ** (attempts - 1)
                if failure.retry_after_s is not None:
                    wait = min(max(failure.retry_after_s, 0.0), MAX_RETRY_AFTER_S)
                log.warning(
                    "%s %s: %s on attempt %d; retrying in %.2f s",
                    self.name, self.settings.model, self._scrub(failure.message), attempts, wait,
                )  # fmt: skip
                self._sleep(wait)
                continue
            reply = LLMReply(
                text=text or "",
                provider=self.name,
                model=self.settings.model,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=self.settings.cost(tokens_in, tokens_out),
                attempts=attempts,
                seconds=round(time.perf_counter() - start, 3),
            )
            if not reply.text.strip():
                raise ProviderError("empty", "the answer has no text", attempts, reply)
            return reply

    def _make_client(self, key: str) -> Any:
        raise NotImplementedError

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        raise NotImplementedError

    def _failure(self, exc: Exception) -> _Failure | None:
        """The fault `exc` stands for, or None when it is not an API or transport fault."""
        raise NotImplementedError


def _status_kind(status: int | None) -> str:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status is not None and status >= 500:
        return "server"
    return "bad_request"


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def _transport_kind(exc: Exception) -> str | None:
    """timeout / connection for the HTTP libraries' own exceptions (the SDKs
    use httpx or its fork httpx2 and sometimes let them through)."""
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        if isinstance(exc, module.TimeoutException):
            return "timeout"
        if isinstance(exc, module.TransportError):
            return "connection"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    return None


class AnthropicProvider(Provider):
    name = "anthropic"

    def _make_client(self, key: str) -> Any:
        import anthropic

        return anthropic.Anthropic(
            api_key=key,
            base_url=self.settings.base_url,
            timeout=self.settings.timeout_s,
            max_retries=0,  # our loop retries
        )

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        message = self._client.messages.create(
            model=self.settings.model,
            max_tokens=self.settings.max_tokens,
            system=system,
            messages=[{"role": "user", "content": prompt}],
        )
        text = "".join(
            block.text for block in message.content if getattr(block, "type", "") == "text"
        )
        usage = message.usage
        return text, int(usage.input_tokens or 0), int(usage.output_tokens or 0)

    def _failure(self, exc: Exception) -> _Failure | None:
        import anthropic

        if isinstance(exc, anthropic.APITimeoutError):
            return _Failure("timeout", f"no answer within {self.settings.timeout_s:g} s")
        if isinstance(exc, anthropic.APIConnectionError):
            return _Failure("connection", f"cannot reach the endpoint: {exc}")
        if isinstance(exc, anthropic.APIStatusError):
            return _Failure(
                _status_kind(exc.status_code),
                f"HTTP {exc.status_code}: {exc.message}",
                _retry_after(exc.response.headers),
            )
        kind = _transport_kind(exc)
        return _Failure(kind, f"{type(exc).__name__}: {exc}") if kind else None


class GeminiProvider(Provider):
    name = "gemini"

    def _make_client(self, key: str) -> Any:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.settings.base_url,
            timeout=int(self.settings.timeout_s * 1000),  # milliseconds
            retry_options=None,  # None: the SDK makes one attempt; our loop retries
        )
        # vertexai=False: GOOGLE_GENAI_USE_VERTEXAI in the environment must not send the
        # call (and the key) to Vertex AI instead of the Gemini API.
        return genai.Client(vertexai=False, api_key=key, http_options=options)

    def _call(self, system: str, prompt: str) -> tuple[str, int, int]:
        from google.genai import types

        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=self.settings.temperature,
            max_output_tokens=self.settings.max_tokens,
        )
        response = self._client.models.generate_content(
            model=self.settings.model, contents=prompt, config=config
        )
        usage = response.usage_metadata
        tokens_in = int(getattr(usage, "prompt_token_count", None) or 0)
        tokens_out = int(getattr(usage, "candidates_token_count", None) or 0)
        return response.text or "", tokens_in, tokens_out

    def _failure(self, exc: Exception) -> _Failure | None:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            headers = getattr(exc.response, "headers", None)
            return _Failure(
                _status_kind(exc.code),
                f"HTTP {exc.code} {exc.status}: {exc.message}",
                _retry_after(headers),
            )
        kind = _transport_kind(exc)
        if kind == "timeout":
            return _Failure(kind, f"no answer within {self.settings.timeout_s:g} s")
        return _Failure(kind, f"{type(exc).__name__}: {exc}") if kind else None


PROVIDERS = {"anthropic": AnthropicProvider, "gemini": GeminiProvider}


def make_provider(
    settings: ProviderSettings,
    environ: Mapping[str, str] = os.environ,
    *,
    sleep: Callable[[float], Any] = time.sleep,
) -> Provider:
    key = environ.get(settings.api_key_env, "")
    if not key.strip():
        raise ProviderError(
            "missing_key", f"the environment variable {settings.api_key_env} is not set"
        )
    return PROVIDERS[settings.provider](settings, key.strip(), sleep)
