"""The model: pretrained weights really load, shapes, per-prompt independence, PMHM heads."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.inference.preprocess import normalize  # noqa: E402
from actiseg_ros.training.modeling.actiseg_model import ActiSegSegmenter, ModelConfig  # noqa: E402
from actiseg_ros.training.modeling.image_encoder import build_efficientnet  # noqa: E402
from actiseg_ros.training.modeling.text_encoder import TextEncoder, load_tokenizer, sentence_embedding, tokenize  # noqa: E402

ESPRESSO, EGYPTIAN_CAT = 967, 285  # ImageNet-1k class indices


@pytest.mark.parametrize("image_name, expected", [("coffee", ESPRESSO), ("chelsea", EGYPTIAN_CAT)])
def test_efficientnet_lite0_weights_classify_sample_images(image_name, expected):
    import cv2
    from skimage import data

    net = build_efficientnet("efficientnet-lite0", pretrained=True).eval()
    rgb = cv2.resize(getattr(data, image_name)(), (224, 224), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = net(torch.from_numpy(normalize(rgb[None])))
    assert int(logits.argmax()) == expected
    assert float(torch.softmax(logits, 1)[0, expected]) > 0.5


def test_minilm_sentence_vectors_are_semantic():
    tokenizer, encoder = load_tokenizer(), TextEncoder()
    ids, mask = tokenize(tokenizer, ["chef knife", "cleaver", "dish soap"])
    vectors = sentence_embedding(encoder(ids, mask), mask)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    config = ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=1, input_hw=(64, 96))
    return ActiSegSegmenter(config).eval()


def test_output_shapes(small_model):
    images = torch.randn(2, 3, 64, 96)
    out = small_model(images, torch.randn(2, 3, 32, 384), torch.ones(2, 3, 32))
    assert out["mask_logits"].shape == (2, 3, 16, 24)
    assert out["positive_logits"].shape == (2, 3)


def test_each_prompt_is_decoded_independently_of_the_others(small_model):
    """The decoder is batched over K prompts; adding prompts must not change any prompt's result."""
    images = torch.randn(1, 3, 64, 96)
    tokens, mask = torch.randn(1, 4, 32, 384), torch.ones(1, 4, 32)
    mask[:, :, 20:] = 0
    with torch.no_grad():
        together = small_model(images, tokens, mask)
        alone = small_model(images, tokens[:, 2:3], mask[:, 2:3])
    assert torch.allclose(together["mask_logits"][:, 2], alone["mask_logits"][:, 0], atol=1e-5)
    assert torch.allclose(together["positive_logits"][:, 2], alone["positive_logits"][:, 0], atol=1e-5)


def test_padding_tokens_do_not_change_the_result(small_model):
    images = torch.randn(1, 3, 64, 96)
    tokens, mask = torch.randn(1, 1, 32, 384), torch.ones(1, 1, 32)
    mask[:, :, 10:] = 0
    other = tokens.clone()
    other[:, :, 10:] = 99.0  # garbage behind the mask
    with torch.no_grad():
        a = small_model(images, tokens, mask)["mask_logits"]
        b = small_model(images, other, mask)["mask_logits"]
    assert torch.allclose(a, b, atol=1e-5)


def test_pmhm_aux_heads_start_as_noisy_copies_and_are_training_only(small_model):
    main = dict(small_model.decoder.mask_head.named_parameters())
    aux = dict(small_model.aux_heads.heads[0].named_parameters())
    for name, parameter in main.items():
        difference = (aux[name] - parameter).abs()
        assert 0 < float(difference.max()) < 0.01  # N(0, 1e-3) noise
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        plain = small_model(images, torch.randn(1, 2, 32, 384), torch.ones(1, 2, 32))
        with_aux = small_model(images, torch.randn(1, 2, 32, 384), torch.ones(1, 2, 32), with_aux=True)
    assert "aux_mask_logits" not in plain
    assert len(with_aux["aux_mask_logits"]) == 1 and with_aux["aux_mask_logits"][0].shape == (2, 16, 24)


def test_zero_aux_heads_is_the_plain_model():
    config = ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=0, input_hw=(64, 96))
    model = ActiSegSegmenter(config)
    assert len(model.aux_heads.heads) == 0
    out = model(torch.randn(1, 3, 64, 96), torch.randn(1, 1, 32, 384), torch.ones(1, 1, 32), with_aux=True)
    assert "aux_mask_logits" not in out
    with pytest.raises(ValueError, match="0 to 2"):
        ActiSegSegmenter(ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=3))
