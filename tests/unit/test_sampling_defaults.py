"""A model's default sampling fills what a request leaves unset, and only that."""

from __future__ import annotations

from privserve.config import ModelSettings, SamplingDefaults
from privserve.models.bundled import with_bundled_sampling
from privserve.protocol.chat import ChatCompletionRequest
from privserve.services.generation import choice_requests


def _request(**fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_a_models_defaults_fill_what_the_request_leaves_unset() -> None:
    defaults = SamplingDefaults(temperature=0.2, top_p=0.9, top_k=20, repetition_penalty=1.1)
    [request] = choice_requests(_request(top_p=0.5), [1, 2], 8, "id", defaults=defaults)
    sampling = request.sampling
    assert sampling.temperature == 0.2 and sampling.top_k == 20
    assert sampling.top_p == 0.5  # the request's own value wins
    assert sampling.repetition_penalty == 1.1 and sampling.min_p == 0.0


def test_a_request_temperature_of_zero_beats_the_models_default() -> None:
    defaults = SamplingDefaults(temperature=0.7)
    [request] = choice_requests(_request(temperature=0), [1], 8, "id", defaults=defaults)
    assert request.sampling.temperature == 0.0


def test_without_defaults_sampling_is_openais() -> None:
    [request] = choice_requests(_request(), [1], 8, "id")
    assert (request.sampling.temperature, request.sampling.top_p) == (1.0, 1.0)


def test_settings_beat_a_bundled_models_recommendation_field_by_field() -> None:
    own = ModelSettings(keep_alive=60, sampling=SamplingDefaults(temperature=0.8))
    merged = with_bundled_sampling({"smollm2-135m": own})
    smollm2 = merged["smollm2-135m"]
    assert smollm2.sampling.temperature == 0.8  # the operator's
    assert smollm2.sampling.top_p == 0.9  # the model card's
    assert smollm2.keep_alive == 60
