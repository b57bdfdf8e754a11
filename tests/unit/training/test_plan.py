"""The width plan: it classifies every parameter of known models (MHCLM, a user model, transformers' DeepSeek-V4,
hyper-connections') from shapes and modules, reproduces MHCLM's own init and groups exactly, gives µP's closed
forms, and stays the same under torch.compile, deepcopy, pickling, JSON, state_dict and FSDP2."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mhc_mup.errors import WidthParamError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.training.model import MHCLM, ModelConfig
from mhc_mup.training.plan import WidthPlan, WidthRule, canonical_name, width_plan
from mhc_mup.training.width_rules import WidthParameterization, param_groups
from tests.helpers import UserLM

CFG = ModelConfig(d=64, depth=2, heads=4, n_s=4, K=20)
BASE_D = 16


def _mhclm(model: str = "mup", hc: str = "mup", d: int = 64, seed: int | None = 3) -> MHCLM:
    return MHCLM(CFG.replace(d=d), WidthParameterization(model, PARAMETERIZATIONS[hc], BASE_D), seed=seed)


def _meta(build):
    with torch.device("meta"):
        return build()


def _groups(groups: list[dict]) -> list[tuple]:
    return [(g["kind"], g["lr"], g["lr_mult"], [id(p) for p in g["params"]]) for g in groups]


# ── MHCLM: the plan is today's rules exactly ────────────────────────────────────────────────────
@pytest.mark.parametrize("model_param", ["sp", "mup"])
@pytest.mark.parametrize("hc", ["mup", "baseline", "B"])
def test_plan_of_mhclm_equals_its_param_groups_and_init(model_param, hc):
    model = _mhclm(model_param, hc)
    plan = width_plan(model, _meta(lambda: _mhclm(model_param, hc, d=BASE_D, seed=None)))
    rule = WidthRule(model_param, PARAMETERIZATIONS[hc])
    for optimizer in ("adam", "sgd"):
        expected = _groups(param_groups(model, optimizer, 1e-2))
        assert _groups(plan.param_groups(model, rule, optimizer, 1e-2)) == expected
    fresh = copy.deepcopy(model)
    plan.initialise(fresh, rule, torch.Generator().manual_seed(3))  # MHCLM(seed=3) draws from the same seed
    for (name, p), q in zip(model.named_parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_a_user_model_equivalent_to_mhclm_gets_its_groups_init_and_outputs():
    reference = _mhclm()
    user = UserLM(64, base_d=BASE_D)
    plan = width_plan(user, _meta(lambda: UserLM(BASE_D, base_d=BASE_D)))
    rule = WidthRule("mup", PARAMETERIZATIONS["mup"])
    plan.initialise(user, rule, torch.Generator().manual_seed(3))
    for p, q in zip(reference.parameters(), user.parameters(), strict=True):
        assert torch.equal(p, q)  # same draws in the same order: the same model
    for optimizer in ("adam", "sgd"):
        ours = param_groups(reference, optimizer, 1e-2)
        theirs = plan.param_groups(user, rule, optimizer, 1e-2)
        assert [(g["kind"], g["lr_mult"], len(g["params"])) for g in ours] == [
            (g["kind"], g["lr_mult"], len(g["params"])) for g in theirs
        ]
    tokens = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(user(tokens), reference(tokens), rtol=0, atol=0)


# ── µP's closed forms on a toy model ────────────────────────────────────────────────────────────
class Toy(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, d)
        self.hidden = nn.Linear(d, 2 * d)
        self.norm = nn.LayerNorm(2 * d)
        self.out = nn.Linear(2 * d, 7, bias=False)
        self.temperature = nn.Parameter(torch.ones(()))


TOY_KINDS = {"emb.weight": "embedding", "hidden.weight": "hidden", "hidden.bias": "bias", "norm.weight": "gain",
             "norm.bias": "bias", "out.weight": "readout", "temperature": "fixed"}  # fmt: skip
# Tensor Programs V, Table 3 relative to the base (m = 4): Adam µP, SGD µP; SP is 1 everywhere
TOY_LR = {
    "adam": {"embedding": 1, "hidden": 1 / 4, "bias": 1, "gain": 1, "readout": 1 / 4, "fixed": 1},
    "sgd": {"embedding": 4, "hidden": 1, "bias": 4, "gain": 4, "readout": 1 / 4, "fixed": 1},
}


def test_toy_model_is_classified_from_its_growing_dimensions():
    plan = width_plan(Toy(256), Toy(64))
    assert plan.kinds() == TOY_KINDS
    assert {n: p.m for n, p in plan.params.items()} == {**dict.fromkeys(TOY_KINDS, 4.0), "temperature": 1.0}


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("model_param", ["sp", "mup"])
def test_lr_multipliers_are_the_closed_forms(optimizer, model_param):
    plan = width_plan(Toy(256), Toy(64))
    table = TOY_LR["adam" if optimizer == "adamw" else optimizer]
    expected = {n: (table[k] if model_param == "mup" else 1.0) for n, k in TOY_KINDS.items()}
    assert plan.lr_multipliers(WidthRule(model_param), optimizer) == pytest.approx(expected, rel=1e-15)
    opt = plan.make_optimizer(Toy(256), WidthRule(model_param), optimizer, 0.1)
    assert type(opt).__name__.lower() == optimizer
    assert {g["kind"]: g["lr"] for g in opt.param_groups} == pytest.approx({k: 0.1 * v for k, v in (
        (plan.params[n].kind, expected[n]) for n in TOY_KINDS)})  # fmt: skip


@pytest.mark.parametrize("model_param", ["sp", "mup"])
def test_init_stds_are_the_closed_forms(model_param):
    d = 512
    toy = Toy(d)
    temperature = toy.temperature.detach().clone()
    width_plan(toy, Toy(128)).initialise(toy, WidthRule(model_param), torch.Generator().manual_seed(0))
    readout_var = 1 / (2 * d) / (4 if model_param == "mup" else 1)  # N(0, 1/f) or N(0, 1/(f·m)), f = 2d
    for p, var in ((toy.emb.weight, 1.0), (toy.hidden.weight, 1 / d), (toy.out.weight, readout_var)):
        n = p.numel()
        assert abs(p.var().item() / var - 1) < 6 * math.sqrt(2 / n), (p.shape, p.var().item(), var)  # 6σ
    assert torch.all(toy.norm.weight == 1) and torch.all(toy.norm.bias == 0) and torch.all(toy.hidden.bias == 0)
    assert torch.equal(toy.temperature, temperature)  # fixed: left alone


def test_kind_overrides_and_their_errors():
    plan = width_plan(Toy(64), Toy(32), kinds={"out.*": "hidden"})
    assert plan.params["out.weight"].kind == "hidden" and plan.params["out.weight"].m == 2.0
    with pytest.raises(WidthParamError, match=r"'nothing\.\*' matches no body parameter"):
        width_plan(Toy(64), Toy(32), kinds={"nothing.*": "hidden"})
    with pytest.raises(WidthParamError, match=r"'out\.weight': 'matrix' is not one of"):
        width_plan(Toy(64), Toy(32), kinds={"out.weight": "matrix"})


# ── bad input: one line naming the parameter ────────────────────────────────────────────────────
class Stack(nn.Module):
    """Parameters whose leading dimension grows: no rule covers it."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d, 3, 3))


def test_errors_name_the_parameter():
    with pytest.raises(WidthParamError, match="needs a base model"):
        width_plan(Toy(64), None)
    with pytest.raises(WidthParamError, match=r"parameter 'w': dimension 0 grows \(8 in the base model, 16 here\)"):
        width_plan(Stack(16), Stack(8))
    with pytest.raises(WidthParamError, match="no dimension of any parameter differs"):
        width_plan(Toy(64), Toy(64))
    other = Toy(32)
    other.extra = nn.Linear(3, 3)
    with pytest.raises(WidthParamError, match=r"parameter 'extra\.weight' is not in the base model"):
        width_plan(other, Toy(16))
    plan = width_plan(Toy(64), Toy(32))
    with pytest.raises(WidthParamError, match=r"parameter 'emb.weight' has shape \(50, 128\), the plan's is"):
        plan.param_groups(Toy(128), WidthRule(), "adam", 1e-3)
    with pytest.raises(WidthParamError, match="optimizer must be one of adam, adamw, sgd, got 'lion'"):
        plan.param_groups(Toy(64), WidthRule(), "lion", 1e-3)
    with pytest.raises(WidthParamError, match="learning rate must be a positive finite number, got nan"):
        plan.param_groups(Toy(64), WidthRule(), "adam", float("nan"))
    with pytest.raises(WidthParamError, match="model parameterization must be sp or mup, got 'ntk'"):
        WidthRule("ntk")
    assert WidthRule("mup", "baseline") == WidthRule("mup", PARAMETERIZATIONS["baseline"])
    with pytest.raises(WidthParamError, match="not a width plan's dict: KeyError 'params'"):
        WidthPlan.from_dict({"parms": {}})
    bad = plan.to_dict()
    bad["params"]["emb.weight"]["kind"] = "matrix"
    with pytest.raises(WidthParamError, match=r"parameter kind must be one of .* got 'matrix'"):
        WidthPlan.from_dict(bad)


def test_the_model_at_the_base_width_needs_a_delta():
    plan = width_plan(Toy(32), Toy(32), delta=Toy(64))
    assert plan.kinds() == TOY_KINDS and all(p.m == 1.0 for p in plan.params.values())


# ── round trips ─────────────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def mhclm_plan() -> tuple[MHCLM, WidthPlan]:
    model = _mhclm()
    return model, width_plan(model, _meta(lambda: _mhclm(d=BASE_D, seed=None)))


def test_plan_survives_deepcopy_pickle_and_json(mhclm_plan):
    _, plan = mhclm_plan
    assert copy.deepcopy(plan) == plan
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert WidthPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    rule = WidthRule("sp", PARAMETERIZATIONS["B"])
    assert WidthRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize("roundtrip", ["deepcopy", "pickle", "state_dict"])
def test_plan_applies_to_copies_of_the_model(mhclm_plan, roundtrip):
    model, plan = mhclm_plan
    if roundtrip == "deepcopy":
        other = copy.deepcopy(model)
    elif roundtrip == "pickle":
        other = pickle.loads(pickle.dumps(model))
    else:
        other = MHCLM.from_state_dict(model.state_dict())
    assert width_plan(other, _meta(lambda: _mhclm(d=BASE_D, seed=None))) == plan
    rule = WidthRule()
    assert [g["lr"] for g in plan.param_groups(other, rule, "adam", 1e-2)] == [
        g["lr"] for g in plan.param_groups(model, rule, "adam", 1e-2)
    ]


def test_plan_of_a_compiled_model_is_the_plan_and_trains_it(mhclm_plan):
    model, plan = mhclm_plan
    compiled = torch.compile(copy.deepcopy(model), backend="eager")
    assert any("_orig_mod." in n for n, _ in compiled.named_parameters())
    assert canonical_name("_orig_mod.blocks.0.attn.hc.fn") == "blocks.0.attn.hc.fn"
    assert width_plan(compiled, _meta(lambda: _mhclm(d=BASE_D, seed=None))) == plan
    opt = plan.make_optimizer(compiled, WidthRule(), "adam", 1e-2)
    tokens = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    loss = F.cross_entropy(compiled(tokens).flatten(0, 1), tokens.flatten())
    loss.backward()
    opt.step()
    assert {g["kind"]: g["lr_mult"] for g in opt.param_groups} == {
        g["kind"]: g["lr_mult"] for g in param_groups(model, "adam", 1e-2)
    }


def test_optimizer_state_dict_keeps_the_plans_rates(mhclm_plan):
    model, plan = mhclm_plan
    opt = plan.make_optimizer(model, WidthRule(), "adamw", 1e-2, weight_decay=0.0)
    again = plan.make_optimizer(copy.deepcopy(model), WidthRule(), "adamw", 1.0)
    again.load_state_dict(opt.state_dict())
    assert [(g["kind"], g["lr"], g["lr_mult"]) for g in again.param_groups] == [
        (g["kind"], g["lr"], g["lr_mult"]) for g in opt.param_groups
    ]


def test_plan_under_fsdp2_fully_shard_on_cpu(mhclm_plan):
    """FSDP2 on CPU (gloo, world size 1): the plan of the sharded model is the same, its groups build, a step
    runs and the plan initialises DTensor parameters. More ranks and GPUs are not tested here."""
    dist = pytest.importorskip("torch.distributed")
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    if not dist.is_available() or not hasattr(fsdp, "fully_shard"):
        pytest.skip("torch.distributed / FSDP2 not available in this build")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        model, plan = mhclm_plan
        sharded = copy.deepcopy(model)
        from torch.distributed.device_mesh import init_device_mesh

        fsdp.fully_shard(sharded, mesh=init_device_mesh("cpu", (1,)))  # on the CPU even where CUDA is present
        assert type(next(sharded.parameters())).__name__ == "DTensor"
        assert width_plan(sharded, _meta(lambda: _mhclm(d=BASE_D, seed=None))) == plan
        plan.initialise(sharded, WidthRule(), torch.Generator().manual_seed(3))
        for p, q in zip(model.parameters(), sharded.parameters(), strict=True):
            assert torch.equal(p, q.full_tensor())
        opt = plan.make_optimizer(sharded, WidthRule(), "adam", 1e-2)
        tokens = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
        sharded(tokens).float().logsumexp(-1).mean().backward()
        opt.step()
    finally:
        dist.destroy_process_group()


# ── real implementations ────────────────────────────────────────────────────────────────────────
needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="needs transformers (pip install -e '.[adapters]')"
)
needs_hc = pytest.mark.skipif(
    importlib.util.find_spec("hyper_connections") is None,
    reason="needs hyper-connections (pip install -e '.[adapters]')",
)


def _deepseek_v4(d: int):
    """A tiny transformers DeepSeek-V4 whose inner widths (LoRA ranks, heads, experts) grow with ``d``."""
    import transformers

    from mhc_mup.interop.adapters import tiny_deepseek_v4_config

    config = tiny_deepseek_v4_config(d=d)
    config.moe_intermediate_size, config.q_lora_rank, config.o_lora_rank, config.head_dim = (
        d // 4,
        d // 4,
        d // 8,
        d // 4,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.DeepseekV4ForCausalLM(config)


@needs_transformers
def test_deepseek_v4_gets_the_generator_rule_on_every_hyper_connection():
    model = _deepseek_v4(128)
    plan = width_plan(model, _deepseek_v4(64), kinds={"*.position_bias": "bias"})
    hc_names = {n for n, _ in model.named_parameters() if "_hc." in n or ".hc_head." in n}
    assert len(hc_names) == 2 * 2 * 3 + 3
    kinds = plan.kinds()
    assert {n for n, k in kinds.items() if k.startswith("hc_")} == hc_names
    assert all(plan.params[n].gates == ("pre" if "hc_head" in n else "v4") for n in hc_names)
    assert kinds["model.embed_tokens.weight"] == "embedding" and kinds["lm_head.weight"] == "readout"
    assert kinds["model.layers.0.mlp.gate.weight"] == "readout"  # the router: a fixed number of experts
    assert kinds["model.layers.0.self_attn.sinks"] == "fixed"
    for name in ("self_attn.q_a_proj.weight", "self_attn.o_b_proj.weight", "mlp.experts.gate_up_proj",
                 "mlp.shared_experts.down_proj.weight"):  # fmt: skip
        assert kinds[f"model.layers.1.{name}"] == "hidden", name
    assert {kinds[n] for n in kinds if n.endswith("norm.weight") and "hc_head" not in n} == {"gain"}
    mults = plan.lr_multipliers(WidthRule("mup", PARAMETERIZATIONS["mup"]), "adam")
    assert mults["model.layers.0.attn_hc.fn"] == 1 / 128 and mults["model.hc_head.hc_fn"] == 1 / 128  # η/d
    assert mults["model.layers.0.self_attn.q_a_proj.weight"] == 0.5 and mults["lm_head.weight"] == 0.5  # η/m


@needs_transformers
def test_deepseek_v4_is_initialised_by_the_preset_and_still_runs():
    model = _deepseek_v4(128)
    plan = width_plan(model, _deepseek_v4(64), kinds={"*.position_bias": "bias"})
    preset = PARAMETERIZATIONS["B"]  # σ_W = s_C = 1/√(n_s·d): far from transformers' own init
    plan.initialise(model, WidthRule("mup", preset), torch.Generator().manual_seed(0))
    init = preset.init(4, 128)
    hc = model.model.layers[0].attn_hc
    assert abs(hc.fn.std().item() / init.sigma_w[0] - 1) < 0.05 and hc.scale.tolist() == pytest.approx(init.scale)
    assert model.model.hc_head.hc_scale.item() == pytest.approx(init.scale[0])
    logits = model(torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))).logits
    assert torch.isfinite(logits).all()


@needs_hc
def test_hyper_connections_generator_is_recognised():
    import hyper_connections

    class Net(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, d)
            self.hc = hyper_connections.ManifoldConstrainedHyperConnections(
                4, dim=d, branch=nn.Linear(d, d, bias=False), layer_index=0
            )
            self.out = nn.Linear(d, 10, bias=False)

    model = Net(64)
    plan = width_plan(model, Net(32))
    expected = {"dynamic_alpha_fn": ("hc_fn", "alpha"), "dynamic_beta_fn": ("hc_fn", "post"),
                "static_alpha": ("hc_base", "alpha"), "static_beta": ("hc_base", "post"),
                "pre_branch_scale": ("hc_scale", "pre"), "residual_scale": ("hc_scale", "comb"),
                "h_post_scale": ("hc_scale", "post")}  # fmt: skip
    for local, (kind, gates) in expected.items():
        entry = plan.params[f"hc.{local}"]
        assert (entry.kind, entry.gates, entry.n_s, entry.d) == (kind, gates, 4, 64), local
    assert plan.params["hc.norm.gamma"].kind == "gain" and plan.params["hc.norm.gamma"].keep_init
    assert plan.params["hc.branch.weight"].kind == "hidden"
    preset = PARAMETERIZATIONS["hf-v4"].with_rules("mine", sigma_comb="0.5", base_comb="0.25")
    plan.initialise(model, WidthRule("mup", preset), torch.Generator().manual_seed(0))
    alpha = model.hc.dynamic_alpha_fn.detach()
    assert abs(alpha[..., 1:].std().item() / 0.5 - 1) < 0.05 and abs(alpha[..., 0].std().item() / 0.02 - 1) < 0.2
    assert torch.all(model.hc.static_alpha[:, 1:] == 0.25) and torch.all(model.hc.norm.gamma == 0)
