"""What really happens, measured with torch, for tests/test_budget_oracle.py: cache tensors after generate(), FLOPs
under FlopCounterMode, bytes saved for backward under saved_tensors_hooks, optimizer state after one step."""

from __future__ import annotations


def load(folder, dtype="float32", dropout: float | None = None):
    import torch
    from transformers import AutoModelForSeq2SeqLM

    kwargs = {}
    if dropout is not None:
        kwargs = {"dropout_rate": dropout} if "t5" in str(folder).lower() or _is_t5(folder) else {"dropout": dropout}
    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), dtype=getattr(torch, dtype),
                                                  attn_implementation="eager", **kwargs)
    return model


def _is_t5(folder) -> bool:
    import json
    from pathlib import Path

    return json.loads((Path(folder) / "config.json").read_text())["model_type"] in ("t5", "mt5", "umt5")


def _ids(model, batch: int, length: int, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    return torch.randint(4, vocab, (batch, length), generator=generator)


def cache_bytes(model, batch: int, source: int, target: int, beams: int) -> tuple[int, int]:
    """(self-attention, cross-attention) bytes of the cache generate() returns after exactly `target` new tokens."""
    import torch

    with torch.no_grad():
        out = model.generate(input_ids=_ids(model, batch, source), max_new_tokens=target, min_new_tokens=target,
                             num_beams=beams, do_sample=False, return_dict_in_generate=True, use_cache=True)
    cache = out.past_key_values
    own = sum(t.nbytes for layer in cache.self_attention_cache.layers for t in (layer.keys, layer.values))
    cross = sum(t.nbytes for layer in cache.cross_attention_cache.layers for t in (layer.keys, layer.values))
    return own, cross


def generate_flops(model, batch: int, source: int, target: int, beams: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model.requires_grad_(False)  # not no_grad(): FlopCounterMode's module tracker trips over BART's positions there
    with FlopCounterMode(display=False) as counter:
        model.generate(input_ids=_ids(model, batch, source), max_new_tokens=target, min_new_tokens=target,
                       num_beams=beams, do_sample=False, use_cache=True)
    return counter.get_total_flops()


def training_flops(model, batch: int, source: int, target: int, checkpointing: bool = False) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of one training step."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    if checkpointing:
        model.activation_checkpointing_enable()
    with FlopCounterMode(display=False) as forward:
        out = model(input_ids=_ids(model, batch, source), labels=_ids(model, batch, target, seed=1))
    with FlopCounterMode(display=False) as backward:
        out.loss.backward()
    return forward.get_total_flops(), forward.get_total_flops() + backward.get_total_flops()


def saved_bytes(model, batch: int, source: int, target: int, checkpointing: bool = False) -> int:
    """Bytes of the distinct storages autograd saves during the forward of one training step (parameters and buffers
    left out); under checkpointing, plus the inputs each checkpointed block keeps."""
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    model.train()
    if checkpointing:
        model.activation_checkpointing_enable()
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def keep(tensor):
        if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
            pointer = tensor.untyped_storage().data_ptr()
            if pointer not in weights and tensor.untyped_storage().nbytes():
                seen[pointer] = tensor.untyped_storage().nbytes()
        return tensor

    def block_inputs(_module, args, kwargs):
        for value in (*args, *kwargs.values()):
            keep(value)

    handles = []
    if checkpointing:
        handles = [m.register_forward_pre_hook(block_inputs, with_kwargs=True) for m in model.modules()
                   if isinstance(m, GradientCheckpointingLayer)]
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = model(input_ids=_ids(model, batch, source), labels=_ids(model, batch, target, seed=1))
    out.loss.backward()
    for handle in handles:
        handle.remove()
    return sum(seen.values())


def optimizer_state_bytes(model, optimizer: str) -> tuple[int, int]:
    """(gradients, optimizer state) bytes after one real step."""
    import torch

    model.train()
    out = model(input_ids=_ids(model, 2, 5), labels=_ids(model, 2, 4, seed=1))
    out.loss.backward()
    parameters = list(model.parameters())
    if optimizer == "adamw":
        opt = torch.optim.AdamW(parameters, lr=1e-4)
    elif optimizer == "adafactor":
        from transformers.optimization import Adafactor

        opt = Adafactor(parameters, lr=1e-4, relative_step=False, scale_parameter=False)
    else:
        opt = torch.optim.SGD(parameters, lr=1e-4)
    opt.step()
    grads = sum(p.grad.nbytes for p in parameters if p.grad is not None)
    state = sum(value.nbytes for per_param in opt.state.values() for value in per_param.values()
                if isinstance(value, torch.Tensor))
    return grads, state


def cuda_peak(folder, dtype: str, mode: str, batch: int, source: int, target: int) -> int:
    """torch.cuda.max_memory_allocated of generate() or of one mixed-precision AdamW step (bfloat16 weights and
    gradients, float32 master weights and moments; plain AdamW in float32)."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = load(folder, dtype).cuda()
    ids = _ids(model, batch, source).cuda()
    if mode == "generate":
        model.requires_grad_(False)
        model.generate(input_ids=ids, max_new_tokens=target, min_new_tokens=target, do_sample=False)
        return torch.cuda.max_memory_allocated()
    model.train()
    parameters = list(model.parameters())
    master = [p.detach().float().clone() for p in parameters] if dtype != "float32" else parameters
    optimizer = torch.optim.AdamW(master, lr=1e-4)
    out = model(input_ids=ids, labels=_ids(model, batch, target, seed=1).cuda())
    out.loss.backward()
    if master is not parameters:
        for high, low in zip(master, parameters):
            high.grad = low.grad.float()
            low.grad = None
    optimizer.step()
    return torch.cuda.max_memory_allocated()
