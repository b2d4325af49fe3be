import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from cbir.errors import BadImageError
from cbir.images import decode_image, is_image_path, load_image
from tests.conftest import gradient, solid, write_image


def test_jpeg_is_rgb_in_the_right_order(tmp_path):
    path = write_image(tmp_path / "red.jpg", solid((220, 30, 30)))
    rgb = load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3) and rgb.flags.c_contiguous
    assert abs(int(rgb[10, 10, 0]) - 220) < 4 and rgb[10, 10, 2] < 40


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".webp", ".jpeg"])
def test_formats(tmp_path, ext):
    path = write_image(tmp_path / f"img{ext}", gradient((0, 0, 255), (255, 255, 0)))
    rgb = load_image(path)
    assert rgb.shape == (48, 64, 3)
    assert rgb[0, 0, 2] > 200 and rgb[0, -1, 0] > 200


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    rgb = load_image(tmp_path / "anim.gif")
    assert rgb.shape == (10, 20, 3) and rgb[5, 5, 0] > 200 and rgb[5, 5, 2] < 50


def test_grayscale_and_16_bit(tmp_path):
    Image.fromarray(np.full((8, 9), 128, np.uint8)).save(tmp_path / "gray.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (8, 9, 3) and (gray == 128).all()
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((8, 9, 3), 65535 // 2, np.uint16))
    deep = load_image(tmp_path / "deep.png")
    assert deep.dtype == np.uint8 and abs(int(deep[0, 0, 0]) - 127) <= 1
    cv2.imwrite(str(tmp_path / "deepgray.png"), np.full((8, 9), 65535, np.uint16))
    assert (load_image(tmp_path / "deepgray.png") == 255).all()


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :3, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    rgb = load_image(tmp_path / "alpha.png")
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 5]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    rgb = load_image(tmp_path / "cmyk.jpg")
    assert rgb.shape == (12, 16, 3) and rgb[6, 8, 0] > 200 and rgb[6, 8, 1] < 60


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)  # red left half
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    pil.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    rgb = load_image(tmp_path / "rot.jpg")
    assert rgb.shape == (40, 20, 3)
    assert rgb[2, 10, 0] > 200 and rgb[-3, 10, 0] < 50  # red is now on top
    decoded = decode_image((tmp_path / "rot.jpg").read_bytes())
    assert (decoded.width, decoded.height) == (20, 40)


def test_one_pixel_image(tmp_path):
    path = write_image(tmp_path / "one.png", solid((1, 2, 3), size=(1, 1)))
    assert load_image(path).shape == (1, 1, 3)


def test_large_jpeg_is_decoded_reduced_and_bounded(tmp_path):
    path = write_image(tmp_path / "big.jpg", gradient((255, 0, 0), (0, 0, 255), size=(1200, 1600)))
    decoded = decode_image(path.read_bytes(), max_side=300)
    assert (decoded.width, decoded.height) == (1600, 1200)
    assert max(decoded.rgb.shape[:2]) == 300
    full = load_image(path, max_side=None)
    assert full.shape == (1200, 1600, 3)
    assert abs(decoded.rgb.reshape(-1, 3).mean(axis=0) - full.reshape(-1, 3).mean(axis=0)).max() < 2


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))
    assert path.stat().st_size < 5000
    with pytest.raises(BadImageError, match=r"30000x30000.*over the limit of 90,000,000") as info:
        load_image(path)
    assert info.value.path == str(path)
    with pytest.raises(BadImageError, match="over the limit of 100 pixels"):
        load_image(write_image(tmp_path / "small.png", solid((0, 0, 0), size=(20, 20))), max_pixels=100)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a recognised image format"),
    ],
)
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=reason):
        load_image(path)


def test_truncated_and_corrupted_jpegs_never_raise_anything_else(tmp_path):
    data = (write_image(tmp_path / "ok.jpg", gradient((0, 0, 0), (255, 128, 0), size=(64, 64)))).read_bytes()
    rng = np.random.default_rng(0)
    variants = [data[:n] for n in (1, 2, 10, 100, len(data) // 2, len(data) - 2)]
    for _ in range(20):
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), 20):
            flipped[i] ^= 0xFF
        variants.append(bytes(flipped))
    for variant in variants:
        try:
            rgb = decode_image(variant).rgb
        except BadImageError as exc:
            assert exc.reason
        else:
            assert rgb.dtype == np.uint8 and rgb.ndim == 3


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(BadImageError, match="is a directory"):
        load_image(tmp_path)


def test_extension_filter():
    assert is_image_path("a/B.JPG") and is_image_path("x.webp") and not is_image_path("notes.txt")


def test_pil_roundtrip_in_memory():
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (9, 8, 7)).save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.rgb.shape == (2, 3, 3) and tuple(decoded.rgb[0, 0]) == (9, 8, 7)
