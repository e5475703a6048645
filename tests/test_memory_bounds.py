"""Memory a run may take (issue #22, section 3): --occlusion's re-scoring is counted before loading and goes through
the model in forwards that stay within its budget; the largest runs `generate` allows stay bounded."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from helpers import assert_clean_error, run_cli  # noqa: E402
from t5peek.budget import inference  # noqa: E402
from t5peek.generate import occlusion  # noqa: E402

LONG = " ".join(["the red house is small"] * 24)  # 120 words: one token each, and </s>


def _peak_bytes(run) -> int:
    """The most bytes torch's CPU allocator held at once, beyond what it held before, while `run()` ran: each
    allocation at the start of the operator that made it, each free where the profiler saw it."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    live = peak = 0
    for event in sorted(profiler.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _rescore(model, tokenizer, prompt, rows=None, output=(0, 5, 7, 9, 11, 13, 1)):
    encoded = tokenizer(prompt, return_tensors="pt")
    special = set(tokenizer.all_special_ids)
    positions = [i for i, token in enumerate(encoded.input_ids[0].tolist()) if token not in special]
    chunking = {} if rows is None else {"rows": rows}
    return occlusion.output_probabilities(model, encoded.input_ids, encoded.attention_mask, list(output),
                                          tokenizer.pad_token_id, positions, **chunking)


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_chunked_rescoring_equals_one_batch(models, family):
    """Any split of the copies gives the probabilities of one batch (up to float32 rounding: a matmul's last bits
    may depend on the batch's size)."""
    model, tokenizer = models[family]
    prompt = " ".join(["the red house is small"] * 4)
    output = (0, 5, 7, 9, 11, 13, 1) if family == "t5" else (2, 5, 7, 9, 11, 13, 2)
    whole = _rescore(model, tokenizer, prompt, rows=10**6, output=output)
    assert len(whole) == 21 and len(whole[0]) == len(output) - 1
    for rows in (1, 2, 5, 20):
        chunked = _rescore(model, tokenizer, prompt, rows=rows, output=output)
        assert len(chunked) == len(whole)
        for got, expected in zip(chunked, whole):
            assert got == pytest.approx(expected, abs=1e-6, rel=1e-5)


@pytest.mark.parametrize("family, source, steps, rows, mask", [
    ("t5", 60, 10, 1, False), ("t5", 60, 10, 4, True), ("t5", 250, 5, 3, True), ("t5", 20, 60, 2, True),
    ("bart", 60, 10, 4, True), ("bart", 60, 60, 8, True), ("bart", 10, 60, 2, False),
])
def test_rescoring_estimate_bounds_a_measured_forward(models, family, source, steps, rows, mask):
    """What one re-scoring forward allocates stays within t5peek.budget's estimate, and not far below it."""
    model, _ = models[family]
    ids = torch.randint(5, 40, (rows, source))
    decoder_input = torch.randint(5, 40, (1, steps)).expand(rows, -1)
    attention_mask = torch.ones(1, source, dtype=torch.long).expand(rows, -1) if mask else None

    def forward():
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attention_mask, decoder_input_ids=decoder_input,
                           use_cache=False, return_dict=True).logits.float()
            torch.log_softmax(logits, dim=-1).exp()

    measured = _peak_bytes(forward)
    from t5peek.budget.shapes import read_shape
    from t5peek.params import tensors_from_model

    shape = read_shape(model.config.to_dict(), tensors_from_model(model))
    estimated = rows * inference.rescoring_bytes(shape, source, steps, 4)
    assert measured <= estimated <= 2 * measured


@pytest.mark.slow
def test_occlusion_forwards_stay_within_their_budget(models, monkeypatch):
    """With a 2 MiB budget a 121-token source is re-scored in several forwards, none allocating more than the
    budget, and the drop matrix is the one of a single batch."""
    model, tokenizer = models["t5"]
    budget = 2 * 1024 ** 2
    monkeypatch.setattr(inference, "OCCLUSION_FORWARD_BYTES", budget, raising=False)
    forwards = []
    forward = type(model).forward

    def counting(self, *args, **kwargs):
        forwards.append(kwargs["input_ids"].shape[0])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", counting)
    found = {}
    peak = _peak_bytes(lambda: found.update(chunked=_rescore(model, tokenizer, LONG)))
    assert len(forwards) > 3 and sum(forwards) == 121
    assert set(forwards[:-1]) == {occlusion.forward_rows(model, 121, 121, 6)}
    assert peak <= budget
    forwards.clear()
    whole = _rescore(model, tokenizer, LONG, rows=121)
    assert forwards == [121]
    for got, expected in zip(found["chunked"], whole):
        assert got == pytest.approx(expected, abs=1e-6, rel=1e-5)


def test_a_copy_larger_than_the_budget_goes_alone(models, monkeypatch):
    model, _ = models["t5"]
    monkeypatch.setattr(inference, "OCCLUSION_FORWARD_BYTES", 1)
    assert occlusion.forward_rows(model, 500, 499, 20) == 1
    monkeypatch.setattr(inference, "OCCLUSION_FORWARD_BYTES", 10 ** 12)
    assert occlusion.forward_rows(model, 500, 499, 20) == 500  # never more rows than copies


def _estimates(folder, source: int, new_tokens: int) -> tuple[int, int]:
    from t5peek.budget.run import estimate_generate_peak
    from t5peek.checkpoint import read_local_checkpoint

    config = json.loads((folder / "config.json").read_text())
    checkpoint = read_local_checkpoint(folder, folder)
    return (estimate_generate_peak(config, checkpoint, source, new_tokens),
            estimate_generate_peak(config, checkpoint, source, new_tokens, occlusion=True))


def test_preflight_counts_the_occlusion_batch(monkeypatch, tiny_t5):
    """The weights and the run's caches fit; one forward of --occlusion's copies does not: refused before loading,
    with the estimate (issue #22: a 3,900-token prompt passed the check and asked torch for 949 GB)."""
    from t5peek import loading, placement

    plain, rescored = _estimates(tiny_t5, 121, 2)
    one = inference.rescoring_bytes(_shape(tiny_t5), 121, 2, 4)
    assert rescored - plain > 60 * one  # most of the 122 copies in one forward
    monkeypatch.setattr(placement, "available_memory", lambda device: (plain + rescored) // 2)
    monkeypatch.setattr(loading, "_from_pretrained", lambda *a, **k: pytest.fail("weights were loaded"))
    result = run_cli("generate", "-m", str(tiny_t5), LONG, "-n", "2", "--occlusion")
    assert_clean_error(result, 1, "needs about", "caches and activations of this run",
                       "121 source tokens, 2 new tokens, re-scored once per source token for --occlusion",
                       "t5peek budget")
    monkeypatch.undo()
    monkeypatch.setattr(placement, "available_memory", lambda device: (plain + rescored) // 2)
    assert run_cli("generate", "-m", str(tiny_t5), LONG, "-n", "2").exit_code == 0


def _shape(folder):
    from t5peek.budget.shapes import parameter_tensors, read_shape
    from t5peek.checkpoint import read_local_checkpoint

    config = json.loads((folder / "config.json").read_text())
    return read_shape(config, parameter_tensors(config, read_local_checkpoint(folder, folder), None))


def test_the_preflight_counts_what_the_run_chunks(tiny_t5, models):
    """The estimate before loading (headers) and the chunking at run time (the loaded model) read the same shape:
    the pre-flight's forward is the one the run makes."""
    model, _ = models["t5"]
    plain, rescored = _estimates(tiny_t5, 400, 20)
    weights = _shape(tiny_t5).parameters * 4
    rows, forward = inference.rescoring_batch(_shape(tiny_t5), 401, 400, 20, 4)
    assert rows == occlusion.forward_rows(model, 401, 400, 20)
    assert rescored == max(plain, weights + forward)


def test_running_out_of_memory_while_rescoring_is_one_line(monkeypatch, tiny_t5):
    """--skip-memory-check skips the check; torch's allocator failing then is NotEnoughMemory (exit 1), not
    `unexpected`."""
    from transformers import T5ForConditionalGeneration

    forward = T5ForConditionalGeneration.forward

    def failing(self, *args, **kwargs):
        if kwargs.get("use_cache") is False:  # the re-scoring, not the decoding
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                               "you tried to allocate 1019215872000 bytes.")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(T5ForConditionalGeneration, "forward", failing)
    result = run_cli("generate", "-m", str(tiny_t5), LONG, "-n", "2", "--occlusion", "--skip-memory-check")
    assert_clean_error(result, 1, "--occlusion ran out of memory", "121 copies")
    assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1


# ------------------------------------------------------------------- the largest runs generate allows


@pytest.fixture
def no_weights(monkeypatch):
    from t5peek import loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_beams_times_the_square_of_the_length_is_bounded_before_loading(tiny_t5, no_weights, extra):
    """Issue #22: `-b 64 -n 2048 --json` printed nothing for 300 s; every beam's input at every step is kept, so the
    allowed length shrinks with the beams, and the refusal says how far a run may go."""
    result = run_cli("generate", "-m", str(tiny_t5), "the red house", "-b", "64", "-n", "2048", *extra)
    assert result.exit_code == 2, result.stdout + result.stderr
    text = result.stdout if extra else result.stderr
    for fragment in ("64 beams and 2,048 new tokens", "134,283,264 tokens", "at most 2,097,152",
                     "with 64 beams, at most 255 new tokens"):
        assert fragment in text, text
    if extra:
        assert json.loads(result.stdout)["error"]["kind"] == "usage"


@pytest.mark.parametrize("beams, most", [(1, 2048), (2, 1447), (4, 1023), (16, 511), (64, 255)])
def test_the_most_new_tokens_per_beam_count(beams, most):
    from t5peek import seq2seq
    from t5peek.errors import UsageError
    from t5peek.generate.run import GenerateRequest, check_request

    assert seq2seq.most_beam_tokens(beams) == most
    assert beams == 1 or beams * most * (most + 1) // 2 <= seq2seq.MAX_BEAM_TOKENS  # greedy keeps one input a step
    check_request(GenerateRequest("the red house", max_new_tokens=most, num_beams=beams))
    if most < seq2seq.MAX_NEW_TOKENS:
        assert beams * (most + 1) * (most + 2) // 2 > seq2seq.MAX_BEAM_TOKENS
        with pytest.raises(UsageError, match=f"at most {most:,} new tokens"):
            check_request(GenerateRequest("the red house", max_new_tokens=most + 1, num_beams=beams))


def test_a_model_file_asking_for_too_long_a_beam_search_is_refused(copy_model, tiny_t5):
    folder = copy_model(tiny_t5)
    settings = json.loads((folder / "generation_config.json").read_text())
    settings.update(num_beams=64, max_length=2049)
    (folder / "generation_config.json").write_text(json.dumps(settings))
    assert_clean_error(run_cli("generate", "-m", str(folder), "the red house"), 2,
                       "64 beams and 2,048 new tokens", "at most 255 new tokens", "--max-new-tokens")
    record = json.loads(run_cli("generate", "-m", str(folder), "the red house", "-n", "3", "--json").stdout)
    assert len(record["beam_steps"]) <= 3 and record["settings"]["num_beams"]["value"] == 64


def test_help_states_the_bounds():
    from t5peek import seq2seq

    result = run_cli("generate", "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert f"1 to {seq2seq.MAX_NEW_TOKENS:,}" in text and f"1 to {seq2seq.MAX_BEAMS}" in text
    most = [f"{seq2seq.most_beam_tokens(beams):,}" for beams in (4, 16, 64)]
    assert f"up to {most[0]} with 4 beams, {most[1]} with 16, {most[2]} with 64" in text, text
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


def _recorded_progress(tiny_t5, monkeypatch, **kwargs) -> list[str]:
    import contextlib

    import t5peek
    from t5peek.generate import run as generate_run

    monkeypatch.setattr(generate_run, "PROGRESS_SECONDS", 0)
    shown: list[str] = []

    @contextlib.contextmanager
    def progress(message):
        shown.append(message)
        yield

    t5peek.Model(str(tiny_t5), progress=progress).generate("the red house is small", **kwargs)
    return shown


def test_a_run_without_a_step_callback_shows_its_progress(tiny_t5, monkeypatch):
    """--json (and any caller without on_step) gets a progress line on stderr: the step, the most it may reach,
    then --occlusion's re-scoring."""
    shown = _recorded_progress(tiny_t5, monkeypatch, max_new_tokens=3, num_beams=2, occlusion=True)
    decoding = [message for message in shown if message.startswith("Decoding")]
    assert decoding[:3] == ["Decoding: step 1 of at most 3, 2 beams…", "Decoding: step 2 of at most 3, 2 beams…",
                            "Decoding: step 3 of at most 3, 2 beams…"][:len(decoding)]
    assert decoding and shown[-2:] == ["--occlusion: re-scored 0 of 6 copies of the source…",
                                       "--occlusion: re-scored 6 of 6 copies of the source…"]
    greedy = _recorded_progress(tiny_t5, monkeypatch, max_new_tokens=2)
    assert [m for m in greedy if m.startswith("Decoding")][0] == "Decoding: step 1 of at most 2…"


def test_a_run_that_streams_its_steps_shows_no_decoding_progress(tiny_t5, monkeypatch):
    shown = _recorded_progress(tiny_t5, monkeypatch, max_new_tokens=3, on_step=lambda step: None)
    assert not [message for message in shown if message.startswith("Decoding")]


def test_text_output_to_a_file_shows_the_decoding_progress_on_stderr(tiny_t5, monkeypatch):
    """The steps went to the file and the terminal stayed blank for the whole run (issue #24): with stdout not a
    terminal, the progress line on stderr says how far decoding has got."""
    import contextlib

    from helpers import run_cli
    from t5peek import output
    from t5peek.generate import run as generate_run

    monkeypatch.setattr(generate_run, "PROGRESS_SECONDS", 0)
    shown: list[str] = []

    @contextlib.contextmanager
    def progress(self, message):
        shown.append(message)
        yield

    monkeypatch.setattr(output.Output, "progress", progress)
    result = run_cli("generate", "-m", str(tiny_t5), "the red house is small", "-n", "3")
    assert result.exit_code == 0, result.stderr
    assert "step 0" in result.stdout  # the steps themselves still stream to stdout
    assert [m for m in shown if m.startswith("Decoding")][:1] == ["Decoding: step 1 of at most 3…"]
