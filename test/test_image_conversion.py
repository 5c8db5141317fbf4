"""The numpy image converter: every encoding, step padding, byte order, and clear errors for malformed images."""
import numpy as np
import pytest

from actiseg_ros.ros.image_conversion import (ENCODINGS, ImageConversionError, ImageConverter, bridge_is_working,
                                              from_array, msg_to_rgb8, to_rgb8)


class Msg:
    def __init__(self, **fields):
        self.__dict__.update(fields)


RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)  # (H, W, 3)


def raw_msg(height, width, encoding, step, data, bigendian=0):
    return Msg(height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=step, data=data)


def padded_bytes(rows: np.ndarray, step: int) -> bytes:
    """(H, row_bytes) uint8 -> bytes with every row padded to `step` with 0xEE (visible if it leaks)."""
    out = np.full((rows.shape[0], step), 0xEE, np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


@pytest.mark.parametrize("step_pad", [0, 7])
def test_colour_encodings_with_padded_rows(step_pad):
    h, w = RGB.shape[:2]
    layouts = {"rgb8": RGB, "bgr8": RGB[:, :, ::-1], "8UC3": RGB[:, :, ::-1],
               "rgba8": np.dstack([RGB, np.full((h, w), 9, np.uint8)]),
               "bgra8": np.dstack([RGB[:, :, ::-1], np.full((h, w), 9, np.uint8)])}
    for encoding, pixels in layouts.items():
        rows = np.ascontiguousarray(pixels).reshape(h, -1)
        msg = raw_msg(h, w, encoding, rows.shape[1] + step_pad, padded_bytes(rows, rows.shape[1] + step_pad))
        out = msg_to_rgb8(msg)
        assert out.dtype == np.uint8 and out.shape == (h, w, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, RGB, err_msg=encoding)


def test_mono8_becomes_grey_rgb():
    grey = RGB[:, :, 1]
    msg = raw_msg(5, 6, "mono8", 8, padded_bytes(grey, 8))
    out = msg_to_rgb8(msg)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [0, 1])
def test_16_bit_honours_byte_order(encoding, bigendian):
    values = np.array([[0, 255, 256, 4660], [32768, 40000, 65280, 65535]], np.uint16)
    raw = values.astype(">u2" if bigendian else "<u2").tobytes()
    rows = np.frombuffer(raw, np.uint8).reshape(2, 8)
    msg = raw_msg(2, 4, encoding, 10, padded_bytes(rows, 10), bigendian)
    out = msg_to_rgb8(msg)
    expected = np.array([[0, 0, 1, 18], [128, 156, 255, 255]], np.uint8)  # value >> 8
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_array_equal(out[:, :, 2], expected)


def _uyvy(y: np.ndarray, u: int, v: int) -> np.ndarray:
    """(H, W) luma with constant chroma -> (H, 2W) UYVY bytes."""
    out = np.empty((y.shape[0], y.shape[1] * 2), np.uint8)
    out[:, 0::4], out[:, 2::4] = u, v
    out[:, 1::2] = y
    return out


def test_yuv422_variants_agree_and_decode_colour():
    y = np.tile(np.array([40, 80, 120, 160, 200, 240], np.uint8), (4, 1))
    uyvy = _uyvy(y, 128, 128)
    yuyv = uyvy.reshape(4, -1, 2)[:, :, ::-1].reshape(4, -1)  # swap each byte pair: U Y V Y -> Y U Y V
    grey = {}
    for encoding, rows in (("yuv422", uyvy), ("uyvy", uyvy), ("yuv422_yuy2", yuyv), ("yuyv", yuyv)):
        grey[encoding] = msg_to_rgb8(raw_msg(4, 6, encoding, 14, padded_bytes(rows, 14)))
    for encoding, out in grey.items():
        np.testing.assert_array_equal(out, grey["yuv422"], err_msg=encoding)
    out = grey["yuv422"]
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2]).max() <= 1  # no chroma -> grey
    assert (np.diff(out[0, :, 1].astype(int)) > 0).all()  # brighter luma -> brighter pixel
    red = msg_to_rgb8(raw_msg(2, 2, "uyvy", 4, _uyvy(np.full((2, 2), 76, np.uint8), 85, 255).tobytes()))
    assert red[0, 0, 0] > 200 and red[0, 0, 1] < 60 and red[0, 0, 2] < 60


def test_from_array_round_trips_every_encoding():
    for encoding, layout in ENCODINGS.items():
        shape = (3, 4, layout.channels) if not layout.packed_yuv else (3, 4, 2)
        array = RNG.integers(0, 256 if layout.dtype == "uint8" else 65536, shape).astype(layout.dtype)
        if layout.channels == 1:
            array = array[:, :, 0]
        fields = from_array(array, encoding, step=None if layout.packed_yuv else 40, bigendian=True)
        assert fields["width"] == 4 and fields["height"] == 3
        assert msg_to_rgb8(Msg(**fields)).shape == (3, 4, 3)


@pytest.mark.parametrize("fields, words", [
    (dict(height=4, width=4, encoding="rgb8", step=11, data=bytes(64)), ["step 11", "width 4"]),
    (dict(height=4, width=4, encoding="rgb8", step=12, data=bytes(40)), ["data has 40 bytes", "48"]),
    (dict(height=4, width=4, encoding="jpeg", step=12, data=bytes(48)), ["unsupported image encoding 'jpeg'"]),
    (dict(height=0, width=0, encoding="rgb8", step=0, data=b""), ["empty image"]),
    (dict(height=8000, width=8000, encoding="rgb8", step=24000, data=bytes(10)), ["8000x8000", "max_image_pixels"]),
    (dict(height=2, width=3, encoding="yuv422", step=6, data=bytes(12)), ["even width"]),
])
def test_malformed_images_raise_named_errors(fields, words):
    msg = Msg(is_bigendian=0, **fields)
    with pytest.raises(ImageConversionError) as err:
        msg_to_rgb8(msg)
    for word in words:
        assert word in str(err.value)
    with pytest.raises(ImageConversionError):
        ImageConverter(use_cv_bridge=False)(msg)


def test_array_array_data_is_read_without_copying_rules_broken():
    import array

    fields = from_array(RGB, "rgb8")
    msg = Msg(**dict(fields, data=array.array("B", fields["data"])))
    np.testing.assert_array_equal(to_rgb8(msg.height, msg.width, msg.encoding, 0, msg.step, msg.data), RGB)


def test_bridge_self_check_rejects_a_converter_that_ignores_step():
    def ignores_step(msg):  # the PyPI cv_bridge's failure mode: rows assumed unpadded
        layout = ENCODINGS[msg.encoding]
        flat = np.frombuffer(msg.data, np.uint8)[: msg.height * msg.width * layout.bytes_per_pixel]
        return to_rgb8(msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.width * layout.bytes_per_pixel, flat)

    assert bridge_is_working(msg_to_rgb8)
    assert not bridge_is_working(ignores_step)


def test_converter_without_cv_bridge_names_numpy():
    converter = ImageConverter(use_cv_bridge=False)
    assert converter.name == "numpy"
    np.testing.assert_array_equal(converter(Msg(**from_array(RGB, "bgr8"))), RGB[:, :, ::-1])
