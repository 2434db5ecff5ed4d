"""Reading whatever image a user has: modes, transparency, frames, EXIF orientation."""
import numpy as np
from PIL import Image

from nst import inputs


def saved(tmp_path, image, name, **options):
    path = str(tmp_path / name)
    image.save(path, **options)
    return path


def load(path, capsys):
    image = inputs.load_image(path, "style")
    assert image.mode == "RGB"
    return np.asarray(image).astype(int), capsys.readouterr().err


def test_greyscale(tmp_path, capsys):
    pixels, _ = load(saved(tmp_path, Image.new("L", (8, 8), 100), "g.png"), capsys)
    assert (pixels == 100).all()


def test_greyscale_with_alpha_is_composited_on_white(tmp_path, capsys):
    pixels, err = load(saved(tmp_path, Image.new("LA", (8, 8), (100, 0)), "la.png"), capsys)
    assert (pixels == 255).all() and "composited on white" in err


def test_rgba_half_transparent_is_composited_on_white(tmp_path, capsys):
    image = Image.new("RGBA", (8, 8), (0, 0, 200, 255))
    image.putpixel((1, 1), (0, 0, 0, 0))
    image.putpixel((2, 2), (0, 0, 0, 128))
    pixels, err = load(saved(tmp_path, image, "a.png"), capsys)
    assert list(pixels[0, 0]) == [0, 0, 200]
    assert list(pixels[1, 1]) == [255, 255, 255]
    assert abs(pixels[2, 2, 0] - 127) <= 1
    assert "transparent pixels; composited on white" in err


def test_opaque_rgba_says_nothing(tmp_path, capsys):
    _, err = load(saved(tmp_path, Image.new("RGBA", (8, 8), (1, 2, 3, 255)), "o.png"), capsys)
    assert err == ""


def test_palette_with_and_without_transparency(tmp_path, capsys):
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    image.putpixel((0, 0), 0)
    pixels, _ = load(saved(tmp_path, image, "p.png"), capsys)
    assert list(pixels[4, 4]) == [200, 30, 40] and list(pixels[0, 0]) == [0, 0, 0]
    pixels, err = load(saved(tmp_path, image, "pt.png", transparency=0), capsys)
    assert list(pixels[0, 0]) == [255, 255, 255] and list(pixels[4, 4]) == [200, 30, 40]
    assert "composited on white" in err


def test_cmyk_jpeg(tmp_path, capsys):
    rgb = Image.new("RGB", (16, 16), (200, 80, 30))
    pixels, _ = load(saved(tmp_path, rgb.convert("CMYK"), "c.jpg", quality=100), capsys)
    np.testing.assert_allclose(pixels[8, 8], [200, 80, 30], atol=6)


def test_sixteen_bit_png(tmp_path, capsys):
    values = np.array([[0, 32896, 65535]], np.uint16)
    image = Image.new("I;16", (3, 1))
    image.frombytes(values.astype("<u2").tobytes())
    path = saved(tmp_path, image, "16.png")
    assert Image.open(path).mode in ("I;16", "I")
    pixels, _ = load(path, capsys)
    assert list(pixels[0, :, 0]) == [0, 128, 255]


def test_float_tiff(tmp_path, capsys):
    values = np.array([[0.0, 0.5, 1.0]], np.float32)
    path = saved(tmp_path, Image.fromarray(values, "F"), "f.tif")
    pixels, _ = load(path, capsys)
    assert list(pixels[0, :, 1]) == [0, 128, 255]


def test_animated_gif_uses_the_first_frame(tmp_path, capsys):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = str(tmp_path / "anim.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    pixels, err = load(path, capsys)
    assert list(pixels[4, 4]) == [255, 0, 0]
    assert "has 2 frames; using the first" in err


def test_exif_orientation_is_applied(tmp_path, capsys):
    # stored 40 wide x 20 high with a red left half; tag 6 = shown rotated 90 degrees
    # clockwise, so upright it is 20 wide x 40 high with red at the top
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = saved(tmp_path, image, "rot.jpg", exif=exif, quality=100)
    pixels, _ = load(path, capsys)
    assert pixels.shape == (40, 20, 3)
    assert pixels[5, 10, 0] > 200 and pixels[35, 10, 2] > 200


def test_bilevel_and_other_modes_become_rgb(tmp_path, capsys):
    pixels, _ = load(saved(tmp_path, Image.new("1", (8, 8), 1), "b.png"), capsys)
    assert (pixels == 255).all()
    pixels, _ = load(saved(tmp_path, Image.new("RGB", (8, 8), (10, 20, 30)).convert("YCbCr"),
                           "y.jpg", quality=100), capsys)
    np.testing.assert_allclose(pixels[4, 4], [10, 20, 30], atol=4)
