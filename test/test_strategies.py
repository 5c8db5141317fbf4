"""Label-noise-learning strategies in training: config overlays and validation, how each strategy's loss
composes with the base objective / PMHM, the co-teaching group selection, the epoch schedule, one real
`actiseg train` step of each strategy, exact resume after SIGKILL for the stateful ones (ELR,
co-teaching) and co-teaching's choice of the better model."""
import subprocess

import pytest
from process_helpers import kill_after_first_checkpoint

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.training import lnl  # noqa: E402
from actiseg_ros.training.config import STRATEGIES, configs_dir, load_config  # noqa: E402
from actiseg_ros.training.objective import compute_loss, flatten_batch  # noqa: E402
from actiseg_ros.training.schedule import EpochSchedule  # noqa: E402
from actiseg_ros.training.strategies import (  # noqa: E402
    STRATEGY_CLASSES,
    CoTeaching,
    StepContext,
    build_strategy,
    kept_count,
    row_keys,
    strong_view,
)
from conftest import ACTISEG, run_actiseg as run  # noqa: E402

pytestmark = pytest.mark.training  # real torch models, exports or training steps

TINY = configs_dir() / "tiny.yaml"


def overlay(name):
    return configs_dir() / "strategies" / ("%s.yaml" % name)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process work runs single-threaded like the training runs below (same float results, no
    OpenMP oversubscription on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ config
def test_every_overlay_loads_over_both_recipes_and_keeps_the_recipe():
    for recipe in ("default", "tiny"):
        base = load_config(configs_dir() / ("%s.yaml" % recipe))
        for name in ("sce", "gce", "apl", "coteaching", "elr", "npn"):
            config = load_config([configs_dir() / ("%s.yaml" % recipe), overlay(name)])
            assert config.loss.strategy == name
            assert config.model.dim == base.model.dim and config.data_root == base.data_root
            assert config.loss.pmhm == (name not in ("apl", "npn"))


def test_overlay_values_are_the_spec_defaults():
    config = load_config([TINY, overlay("sce"), overlay("gce"), overlay("elr"), overlay("coteaching")])
    assert (config.loss.sce.alpha, config.loss.sce.beta, config.loss.sce.weight) == (0.1, 1.0, 2.0)
    assert (config.loss.gce.q, config.loss.elr.previous_weight, config.loss.elr.lam) == (0.7, 0.01, 5e-4)
    assert config.loss.coteaching.group_size == 128 and config.loss.coteaching.keep_start == 0.95
    npn = load_config([TINY, overlay("npn")]).loss.npn
    assert (npn.warmup_epochs, npn.confidence, npn.nl_weight, npn.cr_weight) == (2, 0.7, 0.1, 0.2)


@pytest.mark.parametrize("strategy", ["apl", "npn"])
def test_focal_replacing_strategies_refuse_pmhm(strategy):
    with pytest.raises(ValueError, match="loss.pmhm: false"):
        load_config(TINY, {"loss.strategy": strategy})


@pytest.mark.parametrize("key, value", [("loss.gce.q", 0.0), ("loss.elr.previous_weight", 1.0),
                                        ("loss.npn.confidence", 0.4), ("loss.coteaching.keep_drop", 0.95)])
def test_out_of_range_strategy_parameters_are_named(key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(TINY, {key: value})


def test_unknown_strategy_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  strategy: gce\n  gce:\n    qq: 0.5\n")
    with pytest.raises(ValueError, match="qq"):
        load_config([TINY, bad])


def test_every_configurable_strategy_has_a_class_and_an_overlay():
    assert set(STRATEGIES) == set(STRATEGY_CLASSES)
    assert {p.stem for p in (configs_dir() / "strategies").glob("*.yaml")} == set(STRATEGIES) - {"none"}


def test_stateful_strategies_refuse_ddp():
    config = load_config([TINY, overlay("elr")])
    with pytest.raises(ValueError, match="single-process"):
        build_strategy(config, world=2)
    assert build_strategy(load_config([TINY, overlay("gce")]), world=2).name == "gce"


# ------------------------------------------------------------------------------------------ schedule
def test_epoch_schedule_with_unequal_epochs():
    schedule = EpochSchedule([3, 2, 2])
    assert schedule.total_steps == 7
    assert [schedule.locate(s) for s in range(7)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [s for s in range(8) if schedule.ends_epoch(s)] == [3, 5, 7]
    assert schedule.milestones([1, 2, 3, 9]) == [3, 5, 7]
    assert EpochSchedule([3, 2, 2], max_steps=4).total_steps == 4
    with pytest.raises(ValueError, match="outside"):
        schedule.locate(7)
    with pytest.raises(ValueError, match="at least one step"):
        EpochSchedule([3, 0])


def test_kept_count_is_what_coteaching_select_keeps():
    for clips in range(1, 260):
        for rate in (0.95, 0.9333333333333333, 0.85, 0.5, 1.0):
            losses = torch.arange(clips, dtype=torch.float64)
            assert kept_count(clips, rate) == len(lnl.coteaching_select(losses, losses, rate)[0])


# ------------------------------------------------------------------------------------------ loss composition
class PixelLinear(torch.nn.Module):
    """A per-pixel linear map images -> mask logits of K prompts, for every decoder layer and auxiliary head:
    a small real network with the segmenter's output layout, so loss-level tests run in milliseconds."""

    def __init__(self, k: int, layers: int = 2, aux: int = 1):
        super().__init__()
        self.k, self.layers, self.aux = k, layers, aux
        self.conv = torch.nn.Conv2d(3, k * (layers + aux), 1)
        torch.nn.init.normal_(self.conv.weight, std=2.0)

    def forward(self, images, with_aux=True):
        out = self.conv(images)  # (B*T, K*(layers+aux), H, W)
        n, _, h, w = out.shape
        maps = out.reshape(n, self.layers + self.aux, self.k, h, w)
        result = {"mask_logits": maps[:, self.layers - 1], "positive_logits": maps[:, self.layers - 1].mean((-2, -1)),
                  "layer_mask_logits": [maps[:, i] for i in range(self.layers - 1)]}
        if with_aux:
            result["aux_mask_logits"] = [maps[:, self.layers + i].reshape(n * self.k, h, w) for i in range(self.aux)]
        return result


def make_batch(indices=(4, 9), t=2, k=3, hw=(8, 12), objects=(3, 2), seed=0):
    """A collate_clips-shaped batch; clip i has objects[i] valid prompts."""
    g = torch.Generator().manual_seed(seed)
    b = len(indices)
    valid = torch.zeros(b, k, dtype=torch.bool)
    for i, count in enumerate(objects):
        valid[i, :count] = True
    targets = (torch.rand(b, t, k, *hw, generator=g) > 0.6).float() * valid.view(b, 1, k, 1, 1)
    weights = torch.where(torch.rand(b, t, k, *hw, generator=g) > 0.8, 5.0, 1.0)
    object_ids = torch.where(valid, torch.arange(1, k + 1).expand(b, k) * 3, -1)
    return {"images": torch.rand(b, t, 3, *hw, generator=g) * 2 - 1, "targets": targets, "weights": weights,
            "objects": targets > 0, "positive": (torch.rand(b, k, generator=g) > 0.5).float() * valid, "valid": valid,
            "prompts": [["p%d" % j for j in range(c)] for c in objects], "index": torch.tensor(indices),
            "frames": torch.tensor([[1, 3]] * b)[:, :t], "object_ids": object_ids}


def forward_of(net):
    return lambda images, with_aux=True: net(images.flatten(0, 1), with_aux)


def test_row_keys_name_the_rows_of_flatten_batch():
    batch = make_batch()
    b, t, k = batch["targets"].shape[:3]
    # Each (clip, frame, prompt) gets a distinct constant target value; the rows then say which they are.
    batch["targets"] = torch.arange(b * t * k, dtype=torch.float32).view(b, t, k, 1, 1).expand_as(batch["targets"])
    rows = flatten_batch(PixelLinear(k)(batch["images"].flatten(0, 1)), batch)
    codes = rows["target"][:, 0, 0].long().tolist()
    expected = [(int(batch["index"][c // (t * k)]), int(batch["frames"][c // (t * k), c // k % t]),
                 int(batch["object_ids"][c // (t * k), c % k])) for c in codes]
    assert row_keys(batch) == expected and len(expected) == t * 5


@pytest.mark.parametrize("name, term", [
    ("sce", lambda logits, rows: lnl.sce_loss(logits, rows["target"])),
    ("gce", lambda logits, rows: lnl.gce_loss(logits, rows["target"])),
    ("elr", lambda logits, rows: lnl.elr_regulariser(logits, 0.99 * torch.sigmoid(rows["logits"]))),
])
def test_additive_strategies_add_their_term_to_the_pmhm_loss(name, term):
    torch.manual_seed(0)
    batch, net = make_batch(), PixelLinear(3)
    config = load_config([TINY, overlay(name)])
    after_warmup = StepContext(0.4, config.loss.pmhm_warmup_epochs, 0)  # PMHM's robust loss is on
    total, parts = build_strategy(config).loss(forward_of(net), batch, after_warmup)
    outputs = net(batch["images"].flatten(0, 1))
    base, base_parts = compute_loss(outputs, batch, config, 0.4, epoch=config.loss.pmhm_warmup_epochs)
    rows = flatten_batch(outputs, batch)
    assert "pmhm_tversky" in parts and name in parts
    assert torch.allclose(total, base + 2.0 * term(rows["logits"], rows), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(total, base)


def test_without_pmhm_the_strategy_loss_covers_every_decoder_layer():
    torch.manual_seed(0)
    batch, net = make_batch(), PixelLinear(3, layers=3)
    rows = flatten_batch(net(batch["images"].flatten(0, 1)), batch)
    layers = [rows["logits"]] + rows["layers"]
    for name, reference in (("sce", lnl.sce_mask_loss), ("apl", lnl.apl_mask_loss)):
        overrides = {"loss.pmhm": False, "model.aux_heads": 0}
        _, parts = build_strategy(load_config([TINY, overlay(name)], overrides)).loss(
            forward_of(net), batch, StepContext(0.0, 0, 0))
        expected = sum(reference(logits, rows["target"], rows["weight"])[0] for logits in layers)
        assert torch.allclose(parts["mask"], expected, rtol=1e-6), name


def test_npn_warms_up_on_the_base_loss_then_learns_from_candidates_and_a_strong_view():
    torch.manual_seed(0)
    config = load_config([TINY, overlay("npn")], {"loss.npn.warmup_epochs": 1})
    strategy, net, batch = build_strategy(config), PixelLinear(3), make_batch()
    calls = []

    def forward(images, with_aux=False):
        calls.append(images)
        return net(images.flatten(0, 1), with_aux)

    _, parts = strategy.loss(forward, batch, StepContext(0.0, 0, 0))
    assert {"focal", "dice"} <= set(parts) and "pll" not in parts and len(calls) == 1
    assert len(strategy.candidates) == len(row_keys(batch))
    total, parts = strategy.loss(forward, batch, StepContext(0.5, 1, 5))
    assert {"pll", "nl", "cr", "dice"} <= set(parts) and len(calls) == 3
    weak, strong = calls[1], calls[2]
    assert strong.shape == weak.shape and not torch.equal(strong, weak)
    total.backward()
    assert torch.isfinite(net.conv.weight.grad).all()
    # The strong view depends only on (seed, step): a resumed run draws the same one.
    assert torch.equal(strong_view(weak, strategy.strong_generator(5, weak.device)), strong)
    saved = strategy.state_dict()
    counts = saved["maps"][row_keys(batch)[0]]  # (h, w, 2)
    assert (counts.sum(-1) >= 2).all()  # two updates, each with at least the noisy label as a candidate


# ------------------------------------------------------------------------------------------ co-teaching selection
def test_coteaching_ranks_each_group_once_and_trains_each_model_on_its_peers_small_loss_clips(tiny_data):
    config = load_config([TINY, overlay("coteaching")], {"data_root": str(tiny_data), "loss.coteaching.group_size": 4})
    strategy = build_strategy(config)
    assert strategy.members == 2 and strategy.steps_in_epoch(0, 8, 2) == 4  # 2 groups x ceil(3 / 2)
    assert strategy.steps_in_epoch(0, 12, 2) == 6 and strategy.steps_in_epoch(6, 10, 2) == 5  # k 3,3,1 at R 0.85
    # Model m fits clip i with confidence sharpness[m][i]: the larger, the smaller its loss.
    sharpness = [{10: 3.0, 11: 0.1, 12: 2.0, 13: 1.0, 14: 0.5, 15: 4.0, 16: 0.2, 17: 1.5},
                 {10: 0.1, 11: 3.0, 12: 1.0, 13: 2.0, 14: 4.0, 15: 0.2, 16: 1.5, 17: 0.5}]
    calls = []

    def score(member, indices):
        calls.append((member, list(indices)))
        batch = make_batch(indices=indices, objects=(3, 3)[:len(indices)])
        batch["positive"].zero_()
        s = torch.tensor([sharpness[member][i] for i in indices]).view(-1, 1, 1, 1, 1)
        logits = (s * (2 * batch["targets"] - 1)).flatten(0, 1)  # (B*T, K, h, w)
        return {"mask_logits": logits, "positive_logits": torch.zeros(logits.shape[:2])}, batch

    order = [13, 10, 17, 12, 16, 11, 14, 15]  # groups [13, 10, 17, 12] and [16, 11, 14, 15]
    plans = [strategy.batches(0, step, order, 2, score) for step in range(2)]
    assert len(calls) == 4  # group 0: 2 batches x 2 models, once
    # A trains on the 3 clips B fits best (13, 12, 17; kept in epoch order), B on A's best (10, 12, 17).
    assert plans == [[[13, 17], [10, 17]], [[12], [12]]]
    resumed = build_strategy(config)
    resumed.load_state_dict(strategy.state_dict())
    assert resumed.batches(0, 1, order, 2, lambda *a: pytest.fail("a restored selection is not re-ranked")) == plans[1]
    # Group 1: A gets B's best (14, 11, 16), B gets A's best (15, 14, 16).
    assert strategy.batches(0, 2, order, 2, score) == [[16, 11], [16, 14]]
    assert len(calls) == 8


# ------------------------------------------------------------------------------------------ real training runs
def train_args(data, out, *extra):
    # One torch thread: on a busy 2-core machine two OpenMP threads per process can make a step 100x slower.
    sets = ["threads=1", "data_root=%s" % data] + list(extra)
    return ["train", "--config", "tiny"] + sum((["--set", s] for s in sets), []) + ["--out", str(out)]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def max_weight_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize("name, extra", [("sce", []), ("gce", []), ("apl", []),
                                         ("npn", ["loss.npn.warmup_epochs=0"])])
def test_one_real_training_step(tiny_data, tmp_path, name, extra):
    args = train_args(tiny_data, tmp_path, "max_steps=1", *extra)
    result = run(args[:3] + ["--config", "strategies/" + name] + args[3:])
    assert result.returncode == 0, result.stderr[-3000:]
    info = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=False)["info"]
    assert info["strategy"] == name and info["steps"] == 1


# Short epochs (the 4-clip `val` split, 2 steps per epoch) so clips recur after the kill point.
STATEFUL = {
    "elr": ["train_split=val", "max_steps=4", "checkpoint_every=1"],
    # One group per epoch of 4 clips: k = 3, steps of 2 + 1 clips; killed after step 1, mid-group.
    "coteaching": ["train_split=val", "max_steps=3", "checkpoint_every=1", "loss.coteaching.group_size=4"],
}


def stateful_args(data, out, name):
    args = train_args(data, out, *STATEFUL[name])
    return args[:3] + ["--config", "strategies/" + name] + args[3:]


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    runs = {}
    for name in STATEFUL:
        out = tmp_path_factory.mktemp("uninterrupted_" + name)
        result = run(stateful_args(tiny_data, out, name))
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = out
    return runs


@pytest.mark.parametrize("name", list(STATEFUL))
def test_resume_after_sigkill_is_exact_with_strategy_state(tiny_data, uninterrupted, tmp_path, name):
    args = ACTISEG + stateful_args(tiny_data, tmp_path, name)
    latest = tmp_path / "latest.pt"
    kill_after_first_checkpoint(args, latest)
    checkpoint = torch.load(latest, map_location="cpu", weights_only=False)
    assert checkpoint["strategy"], "the checkpoint holds no strategy state"
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step %d" % checkpoint["step"] in resumed.stdout
    for file in ("model.pt", "model_peer.pt") if name == "coteaching" else ("model.pt",):
        difference = max_weight_difference(weights(tmp_path / file), weights(uninterrupted[name] / file))
        assert difference == 0.0, "%s: resumed run differs from the uninterrupted one by %g" % (file, difference)


def test_elr_targets_are_reused_when_a_frame_recurs(uninterrupted):
    state = torch.load(uninterrupted["elr"] / "latest.pt", map_location="cpu", weights_only=False)["strategy"]
    frames = {(segment, frame) for segment, frame, _ in state["maps"]}
    # 4 steps x 2 clips x 2 frames were updated; fewer distinct frames means some target was updated twice.
    assert 0 < len(frames) < 16


def test_coteaching_writes_both_models_and_model_pt_is_the_better(uninterrupted, tiny_data):
    from actiseg_ros.training.checkpoint import load_weights
    from actiseg_ros.training.validate import validation_giou

    out = uninterrupted["coteaching"]
    best, config, info = load_weights(out / "model.pt")
    peer, _, peer_info = load_weights(out / "model_peer.pt")
    assert max_weight_difference(weights(out / "model.pt"), weights(out / "model_peer.pt")) > 0
    recorded = info["coteaching"]["val_gIoU"]
    assert peer_info["coteaching"]["val_gIoU"] == recorded and recorded["model.pt"] >= recorded["model_peer.pt"]
    assert sorted(info["coteaching"]["seeds"].values()) == [0, 1]
    strategy = CoTeaching(config)
    segments = strategy.validation_segments
    assert info["coteaching"]["val_segments"] == len(segments) == 4
    assert validation_giou(best, tiny_data, "val_human", segments, config.model.input_hw) == recorded["model.pt"]
    assert validation_giou(peer, tiny_data, "val_human", segments, config.model.input_hw) == recorded["model_peer.pt"]
    # A model that calls every object active with inverted masks scores differently; the better one wins
    # from either position.
    with torch.no_grad():
        peer.segmenter.decoder.positive_head[2].bias.fill_(50.0)
        peer.segmenter.decoder.mask_head.kernel[2].weight.neg_()
        peer.segmenter.decoder.mask_head.kernel[2].bias.neg_()
    worse = validation_giou(peer, tiny_data, "val_human", segments, config.model.input_hw)
    assert worse < recorded["model.pt"]
    for models in ([peer, best], [best, peer]):
        chosen = {name: model for name, model, _ in strategy.final_models(models, log=lambda *_: None)}
        assert chosen["model.pt"] is best and chosen["model_peer.pt"] is peer
