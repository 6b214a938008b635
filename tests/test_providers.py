"""LLM providers: both official SDKs against the loopback server, one suite."""

from __future__ import annotations

import json
import logging

import pytest

from expsearch.agents.providers import ProviderError, ProviderSettings, make_provider

from .llm_server import LLMTestServer, Reply

SECRET = "sk-test-SECRET-123"
PROVIDERS = ["anthropic", "gemini"]


@pytest.fixture(scope="module")
def server():
    with LLMTestServer() as running:
        yield running


def provider(name, server, sleeps=None, **changes):
    fields = dict(
        provider=name, model=f"{name}-model", api_key_env="KEY_FOR_TEST", base_url=server.url,
        max_tokens=321, max_retries=2, backoff_s=0.5, timeout_s=5.0,
        price_input_per_mtok=2.0, price_output_per_mtok=10.0,
        # SDK 2.12's Messages API has no temperature; Gemini gets one to check it is sent.
        temperature=None if name == "anthropic" else 0.3,
    )  # fmt: skip
    settings = ProviderSettings(**{**fields, **changes})
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return make_provider(settings, {"KEY_FOR_TEST": SECRET}, sleep=record)


def calls(server, name, script):
    """Script `name`'s replies; returns a function that counts the calls made since."""
    server.script(name, script)
    before = len(server.requests)
    return lambda: sum(1 for r in server.requests[before:] if r["provider"] == name)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_reply_carries_text_tokens_and_cost(name, server):
    server.script(name, [Reply(text="- idea: 1", input_tokens=1000, output_tokens=200)])
    reply = provider(name, server).complete("be brief", "propose")
    assert reply.text == "- idea: 1" and reply.provider == name and reply.attempts == 1
    assert (reply.input_tokens, reply.output_tokens) == (1000, 200)
    assert reply.cost_usd == pytest.approx(1000 * 2.0 / 1e6 + 200 * 10.0 / 1e6)
    sent = server.requests[-1]
    body = sent["body"]
    if name == "anthropic":
        assert sent["path"] == "/v1/messages"
        assert body["model"] == "anthropic-model" and body["max_tokens"] == 321
        assert body["system"] == "be brief"
        assert body["messages"] == [{"role": "user", "content": "propose"}]
        assert "temperature" not in body
        # SDK 2.12 sends the key as a bearer token (older ones used x-api-key).
        carrying = [k for k, v in sent["headers"].items() if SECRET in v]
        assert (
            carrying == ["authorization"] and sent["headers"]["authorization"] == f"Bearer {SECRET}"
        )
    else:
        # The SDK's default API version is v1; the model is in the path, not the body.
        assert sent["path"] == "/v1/models/gemini-model:generateContent"
        assert body["systemInstruction"]["parts"] == [{"text": "be brief"}]
        assert body["contents"] == [{"role": "user", "parts": [{"text": "propose"}]}]
        assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 321}
        carrying = [k for k, v in sent["headers"].items() if SECRET in v]
        assert carrying == ["x-goog-api-key"] and sent["headers"]["x-goog-api-key"] == SECRET
    assert SECRET not in json.dumps(body) and SECRET not in sent["path"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_429_is_retried_with_backoff_or_retry_after(name, server):
    sleeps = []
    made = calls(server, name, [Reply(status=429), Reply(status=429, headers={"retry-after": "7"}),
                                Reply(text="ok")])  # fmt: skip
    reply = provider(name, server, sleeps).complete("s", "p")
    # Backoff 0.5 s, then the header's 7 s; the SDK itself made no extra calls.
    assert reply.attempts == 3 and made() == 3 and sleeps == [0.5, 7.0]
    sleeps.clear()
    server.script(name, [Reply(status=429, headers={"retry-after": "3600"}), Reply(text="ok")])
    assert provider(name, server, sleeps).complete("s", "p").attempts == 2
    assert sleeps == [60.0]  # a long retry-after is capped


@pytest.mark.parametrize(("name", "status"), [("anthropic", 500), ("anthropic", 529),
                                              ("gemini", 500), ("gemini", 503)])  # fmt: skip
def test_persistent_server_errors_give_up_after_the_retries(name, status, server):
    sleeps = []
    made = calls(server, name, [Reply(status=status)] * 3)
    with pytest.raises(ProviderError) as caught:
        provider(name, server, sleeps).complete("s", "p")
    assert caught.value.kind == "server" and caught.value.attempts == 3 and made() == 3
    assert sleeps == [0.5, 1.0]  # doubling backoff


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_timeout_is_retried_then_reported(name, server):
    server.script(name, [Reply(delay_s=1.5, text="late"), Reply(text="in time")])
    assert provider(name, server, timeout_s=0.4).complete("s", "p").attempts == 2
    server.script(name, [Reply(delay_s=1.5, text="late")] * 2)
    with pytest.raises(ProviderError) as caught:
        provider(name, server, timeout_s=0.4, max_retries=1).complete("s", "p")
    assert caught.value.kind == "timeout" and caught.value.attempts == 2


@pytest.mark.parametrize("name", PROVIDERS)
def test_empty_content_and_auth_errors_are_not_retried(name, server):
    server.script(name, [Reply(text="   ")])
    with pytest.raises(ProviderError) as caught:
        provider(name, server).complete("s", "p")
    assert caught.value.kind == "empty" and caught.value.attempts == 1
    made = calls(server, name, [Reply(status=401), Reply(text="never reached")])
    with pytest.raises(ProviderError) as caught:
        provider(name, server).complete("s", "p")
    assert caught.value.kind == "auth" and caught.value.attempts == 1 and made() == 1
    server.script(name, [])


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_key_never_appears_in_errors_reprs_or_logs(name, server, caplog):
    caplog.set_level(logging.DEBUG)
    # An error body that echoes the key: the retry log line must scrub it.
    server.script(name, [Reply(status=429, text=f"quota of {SECRET} used"), Reply(text="ok")])
    reply = provider(name, server).complete("s", "p")
    assert reply.attempts == 2 and SECRET not in repr(reply)
    assert "retrying" in caplog.text and "***" in caplog.text
    server.script(name, [Reply(status=400, text=f"bad key {SECRET} given")])
    client = provider(name, server)
    with pytest.raises(ProviderError) as caught:
        client.complete("s", "p")
    assert caught.value.kind == "bad_request"
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert SECRET not in repr(client) and SECRET not in repr(vars(client))
    assert SECRET not in caplog.text


def test_missing_key_and_bad_settings_are_named():
    settings = ProviderSettings(provider="anthropic", model="m", api_key_env="NOT_SET_HERE")
    with pytest.raises(ProviderError, match="NOT_SET_HERE is not set") as caught:
        make_provider(settings, {})
    assert caught.value.kind == "missing_key" and caught.value.attempts == 0
    with pytest.raises(ProviderError, match="NOT_SET_HERE is not set"):
        make_provider(settings, {"NOT_SET_HERE": "  "})  # blank counts as missing
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['api_key'\]"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "anthropic", "model": "m",
                                                    "api_key_env": "K", "api_key": "sk"})  # fmt: skip
    with pytest.raises(ValueError, match="takes no temperature"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "anthropic", "model": "m",
                                                    "api_key_env": "K", "temperature": 0.7})  # fmt: skip
    with pytest.raises(ValueError, match=r"agents\.llm\.x\.max_tokens: 0 is below 1"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "gemini", "model": "m",
                                                    "api_key_env": "K", "max_tokens": 0})  # fmt: skip
    with pytest.raises(ValueError, match="takes no temperature"):  # also when built directly
        ProviderSettings(provider="anthropic", model="m", api_key_env="K", temperature=0.5)
    with pytest.raises(ValueError, match="'openai' is not one of"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "openai", "model": "m",
                                                    "api_key_env": "K"})  # fmt: skip


@pytest.mark.parametrize("name", PROVIDERS)
def test_an_unreachable_endpoint_is_a_connection_error(name):
    settings = ProviderSettings(provider=name, model="m", api_key_env="K", max_retries=1,
                                base_url="http://127.0.0.1:9", timeout_s=2.0)  # fmt: skip
    sleeps = []
    with pytest.raises(ProviderError) as caught:
        make_provider(settings, {"K": SECRET}, sleep=sleeps.append).complete("s", "p")
    assert caught.value.kind == "connection" and caught.value.attempts == 2 and len(sleeps) == 1
