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
    settings = ProviderSettings(
        provider=name, model=f"{name}-model", api_key_env="KEY_FOR_TEST", base_url=server.url,
        temperature=0.3, max_tokens=321, max_retries=2, backoff_s=0.5, timeout_s=5.0,
        price_input_per_mtok=2.0, price_output_per_mtok=10.0,
    )  # fmt: skip
    if name == "anthropic":  # SDK 2.12's Messages API has no temperature
        settings = ProviderSettings(**{**settings.__dict__, "temperature": None})
    settings = ProviderSettings(**{**settings.__dict__, **changes})
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return make_provider(settings, {"KEY_FOR_TEST": SECRET}, sleep=record)


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_reply_carries_text_tokens_and_cost(name, server):
    server.script(name, [Reply(text="- idea: 1", input_tokens=1000, output_tokens=200)])
    reply = provider(name, server).complete("be brief", "propose")
    assert reply.text == "- idea: 1" and reply.provider == name and reply.attempts == 1
    assert (reply.input_tokens, reply.output_tokens) == (1000, 200)
    assert reply.cost_usd == pytest.approx(1000 * 2.0 / 1e6 + 200 * 10.0 / 1e6)
    sent = server.requests[-1]
    body = json.dumps(sent["body"])
    assert "be brief" in body and "propose" in body and "321" in body
    if name == "anthropic":
        assert sent["body"]["model"] == "anthropic-model"
        # SDK 2.12 sends the key as a bearer token (older ones used x-api-key).
        carrying = [k for k, v in sent["headers"].items() if SECRET in v]
        assert (
            carrying == ["authorization"] and sent["headers"]["authorization"] == f"Bearer {SECRET}"
        )
    else:
        assert "/models/gemini-model:generateContent" in sent["path"]
        assert sent["headers"]["x-goog-api-key"] == SECRET
        assert sent["body"]["generationConfig"]["temperature"] == 0.3
    assert SECRET not in body


@pytest.mark.parametrize("name", PROVIDERS)
def test_429_is_retried_with_backoff_or_retry_after(name, server):
    sleeps = []
    server.script(name, [Reply(status=429), Reply(status=429, headers={"retry-after": "7"}),
                         Reply(text="ok")])  # fmt: skip
    reply = provider(name, server, sleeps).complete("s", "p")
    assert reply.attempts == 3 and sleeps == [0.5, 7.0]


@pytest.mark.parametrize(("name", "status"), [("anthropic", 500), ("anthropic", 529),
                                              ("gemini", 500), ("gemini", 503)])  # fmt: skip
def test_persistent_server_errors_give_up_after_the_retries(name, status, server):
    sleeps = []
    server.script(name, [Reply(status=status)] * 3)
    with pytest.raises(ProviderError) as caught:
        provider(name, server, sleeps).complete("s", "p")
    assert caught.value.kind == "server" and caught.value.attempts == 3
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
    server.script(name, [Reply(status=401), Reply(text="never reached")])
    with pytest.raises(ProviderError) as caught:
        provider(name, server).complete("s", "p")
    assert caught.value.kind == "auth" and caught.value.attempts == 1
    server.script(name, [])


@pytest.mark.parametrize("name", PROVIDERS)
def test_the_key_never_appears_in_errors_reprs_or_logs(name, server, caplog):
    caplog.set_level(logging.DEBUG)
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
    assert caught.value.kind == "missing_key"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['api_key'\]"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "anthropic", "model": "m",
                                                    "api_key_env": "K", "api_key": "sk"})  # fmt: skip
    with pytest.raises(ValueError, match="takes no temperature"):
        ProviderSettings.from_dict("agents.llm.x", {"provider": "anthropic", "model": "m",
                                                    "api_key_env": "K", "temperature": 0.7})  # fmt: skip
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
